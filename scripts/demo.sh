#!/usr/bin/env bash
# The demo command of the README: installs what is needed, builds, and brings up a two-node mirror cluster in
# network namespaces on this machine (node1 PRIM, node2 SECOND, a web application behind a virtual IP).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
# put `tandem` on the PATH (unless another tandem is installed there)
if [ ! -e /usr/local/bin/tandem ] || [ -L /usr/local/bin/tandem ]; then
  ln -sfn "$PWD/bin/tandem" /usr/local/bin/tandem
fi
exec "$PWD/bin/tandem" lab up "$@"
