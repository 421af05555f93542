#!/usr/bin/env bash
# Installs what tandem needs on a Debian machine (as root) and builds it. Idempotent; fast when nothing changed.
#   Debian packages: iproute2 (ip), arping, iputils-ping, util-linux (nsenter/unshare), curl, nftables
#   npm packages:    from package-lock.json (npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."
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
for pair in ip:iproute2 arping:arping ping:iputils-ping nsenter:util-linux curl:curl nft:nftables; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

lockhash=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -f node_modules/.tandem-lock ] || [ "$(cat node_modules/.tandem-lock)" != "$lockhash" ]; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lockhash" > node_modules/.tandem-lock
fi

npx tsc -p tsconfig.json
