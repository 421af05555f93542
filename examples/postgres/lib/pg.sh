# Sourced by bin/start_prim and bin/stop_prim (POSIX sh). Settings are the module's <var>s (userconfig.xml):
#   PG_DATA      data directory; the replicated directory of <rfs>           (default /srv/pg/data)
#   PG_PORT      TCP port, on every address                                    (default 5432)
#   PG_USER, PG_PASSWORD, PG_DB, PG_CLIENTS
#                a login role and its database, reachable with the password (md5) from the networks of PG_CLIENTS
#                (space-separated CIDRs); created by start_prim when missing. Empty PG_USER: none.
#   PG_LOG       the server's own log, outside the replicated directory      (default <parent of PG_DATA>/log/postgresql.log)
#   PG_SOCKET_DIR  Unix sockets and their lock files: node-local, gone at reboot (default $TANDEM_RUN_DIR/postgres)
#   PG_START_TIMEOUT, PG_STOP_TIMEOUT  seconds                                 (default 60, 30)
#   PG_BIN       server binaries (default: those of the data directory's major version, else the newest installed)
PG_DATA=${PG_DATA:-/srv/pg/data}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-}
PG_PASSWORD=${PG_PASSWORD:-}
PG_DB=${PG_DB:-$PG_USER}
PG_CLIENTS=${PG_CLIENTS:-}
PG_LOG=${PG_LOG:-$(dirname "$PG_DATA")/log/postgresql.log}
PG_SOCKET_DIR=${PG_SOCKET_DIR:-${TANDEM_RUN_DIR:-/run/tandem}/postgres}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}
PG_STOP_TIMEOUT=${PG_STOP_TIMEOUT:-30}

pg_script=$(basename "$0")

pg_fail() {
  echo "$pg_script: $*" >&2
  if [ -s "$PG_LOG" ]; then
    echo "$pg_script: last lines of $PG_LOG:" >&2
    tail -n 20 "$PG_LOG" >&2
  fi
  exit 1
}

# Runs a command as the postgres user (the scripts run as root under the daemon).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bindir() {
  if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return 0; fi
  if [ -f "$PG_DATA/PG_VERSION" ]; then
    v=$(cat "$PG_DATA/PG_VERSION")
    [ -x "/usr/lib/postgresql/$v/bin/postgres" ] || pg_fail "$PG_DATA holds a PostgreSQL $v cluster, but PostgreSQL $v is not installed (no /usr/lib/postgresql/$v/bin/postgres). Install postgresql-$v."
    echo "/usr/lib/postgresql/$v/bin"
    return 0
  fi
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$b" ] && [ -x "$b/initdb" ] || pg_fail "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb). Run scripts/setup.sh or apt-get install postgresql."
  echo "$b"
}

# Prints the PID of the postmaster serving PG_DATA on this host, or returns 1. postmaster.pid alone is not proof: after
# a power-off, or in a copy of the peer's data, it names a process that is dead or is not ours. Ours is a `postgres`
# process in our mount namespace whose working directory is PG_DATA.
pg_server_pid() {
  [ -f "$PG_DATA/postmaster.pid" ] || return 1
  pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 1
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 1
  [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] || return 1
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$(cd "$PG_DATA" && pwd -P)" ] || return 1
  echo "$pid"
}
