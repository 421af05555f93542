#!/usr/bin/env bash
# Installs what tandem needs on a Debian machine (as root) and builds it. Idempotent; fast when nothing changed.
#   scripts/setup.sh          everything: what the demo needs, and what the tests and benchmarks need
#   scripts/setup.sh --demo   what `tandem lab up` needs only (scripts/demo.sh: its start stays under a minute on a
#                             fresh machine); the packages marked (tests) below are left for scripts/test.sh
#   Debian packages: iproute2 (ip), arping, iputils-ping, util-linux (nsenter/unshare), curl, nftables,
#                    (tests) rsync and fio (bench/: what users compare tandem's resync and I/O figures with),
#                    python3 (bench/failover.ts: a packet sniffer in the lab's client host; and node-gyp),
#                    g++ and make (node-gyp builds node-pty, the pseudo-terminal of test/lab/dashboard.test.ts),
#                    (tests) wrk (bench/farm.ts: HTTP load through a farm VIP, from the lab's client host),
#                    (tests) zsh and fish (test/unit/cli/completion.test.ts: the generated completions, run by the real shells),
#                    (tests) postgresql + postgresql-client (initdb, pg_ctl, psql, pgbench; no cluster created, nothing started),
#                    (tests) keepalived (bench/failover.ts: the VRRP failover users compare tandem's with; its host-wide
#                    service is neither started nor left enabled, the bench runs its own in the lab's namespaces),
#                    (tests) openssh-server (test/lab/fanout.test.ts: `tandem -H` against a real sshd; the host's ssh service
#                    is neither started nor left enabled, the test runs its own sshd in each lab node's namespace),
#                    (tests) prometheus (its promtool checks the daemon's /metrics text in test/lab/metrics.test.ts; the
#                    Prometheus server's service is neither started nor left enabled)
#   npm packages:    from package-lock.json (npm ci); bun's executable checked (the single binary's compiler)
set -euo pipefail
cd "$(dirname "$0")/.."
demo_only=0
case "${1:-}" in
  --demo) demo_only=1 ;;
  '') ;;
  *) echo "setup: unknown argument \"$1\" (give nothing, or --demo)" >&2; exit 64 ;;
esac
# the tests' and benchmarks' own packages (not the demo's)
want_tests() { [ "$demo_only" = 0 ]; }
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "setup: run as root (the lab creates network namespaces and installs Debian packages)" >&2
  exit 1
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: tandem needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "       Install Node.js 20 (e.g. from the nodejs.org Debian repository), then run this again." >&2
  exit 1
fi

missing=()
# the demo's: the lab (ip, nsenter, nft, arping, curl) and what npm ci builds node-pty with (python3, g++, make)
pairs="ip:iproute2 arping:arping ping:iputils-ping nsenter:util-linux curl:curl nft:nftables python3:python3 g++:g++ make:make"
# (tests) the benchmarks' and tests' tools
want_tests && pairs="$pairs rsync:rsync fio:fio wrk:wrk zsh:zsh fish:fish"
for pair in $pairs; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# apt-get install of Debian packages whose maintainer scripts must start no service: a policy-rc.d that refuses every
# start is put in place for the install (unless one exists already) and removed again afterwards.
install_no_start() {
  local policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# tandem scripts/setup.sh: start no service while packages are installed\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "$@" >/dev/null
  if [ -n "$policy" ]; then rm -f "$policy"; trap - EXIT; fi
}

# After install_no_start of a package that ships a host-wide service which must never run here: disable its systemd
# units (when systemd runs) and its init script. disable_service INIT_SCRIPT UNIT…
disable_service() {
  local init=$1; shift
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$@" >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null && [ -e "/etc/init.d/$init" ]; then
    update-rc.d "$init" disable >/dev/null 2>&1 || true
  fi
}

# PostgreSQL, the application of examples/postgres (lab tests, benchmarks). Installed without a host-wide cluster and
# without starting any service: each lab node runs its own server on its own data directory.
if want_tests && { ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null \
   || ! command -v psql >/dev/null; }; then
  echo "setup: installing PostgreSQL (no cluster is created, no service is started)"
  mkdir -p /etc/postgresql-common
  pgcc=/etc/postgresql-common/createcluster.conf
  if grep -qE '^[[:space:]#]*create_main_cluster' "$pgcc" 2>/dev/null; then
    sed -ri 's/^[[:space:]#]*create_main_cluster.*/create_main_cluster = false/' "$pgcc"
  else
    echo 'create_main_cluster = false' >> "$pgcc"
  fi
  install_no_start postgresql postgresql-client
fi

# keepalived, the VRRP baseline of bench/failover.ts. The bench starts its own keepalived in each lab node's network
# namespace with a config of its own; the package's host-wide service must not run (it would send VRRP on the host's
# LAN), so it is installed without starting anything and its init script and unit are disabled.
if want_tests && ! command -v keepalived >/dev/null; then
  echo "setup: installing keepalived (its service is not started and is left disabled)"
  install_no_start keepalived
  disable_service keepalived keepalived.service
fi

# openssh-server, the sshd of test/lab/fanout.test.ts (`tandem -H node1,node2 …`). The test starts one sshd per lab
# node inside that node's namespace, with its own host key and config in the lab dir; the host-wide ssh service must
# not be started by this install (nor left enabled by it): policy-rc.d refuses the start, the unit is disabled.
if want_tests && [ ! -x /usr/sbin/sshd ]; then
  echo "setup: installing openssh-server (its service is not started and is left disabled)"
  install_no_start openssh-server openssh-client
  disable_service ssh ssh.service ssh.socket
fi

# prometheus, for its promtool: test/lab/metrics.test.ts checks the daemon's /metrics text with `promtool check
# metrics`. Only promtool is used; the package's Prometheus server must not run on the host, so it is installed without
# starting anything and its init script and unit are disabled.
if want_tests && ! command -v promtool >/dev/null; then
  echo "setup: installing prometheus for promtool (its service is not started and is left disabled)"
  install_no_start prometheus
  disable_service prometheus prometheus.service
fi

lockhash=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -f node_modules/.tandem-lock ] || [ "$(cat node_modules/.tandem-lock)" != "$lockhash" ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lockhash" > node_modules/.tandem-lock
fi

# bun (devDependency: the compiler of the single binary, scripts/build-binary.mjs) puts its executable in place in
# a postinstall script; an npm that skipped install scripts leaves a placeholder: run that script here.
if ! node_modules/.bin/bun --version >/dev/null 2>&1; then
  echo "setup: putting bun's executable in place (node_modules/bun/install.js)"
  (cd node_modules/bun && node install.js)
fi

npx tsc -p tsconfig.json
node scripts/completions.mjs >/dev/null
