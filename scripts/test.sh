#!/usr/bin/env bash
# The test command of the README: installs what is needed, builds, runs unit, scenario and lab tests.
# Ends with the line `N passed, N failed`; exits non-zero on any failure. Arguments go to scripts/test.mjs
# (--unit, --lab, or filters such as `mirror`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
exec node scripts/test.mjs "$@"
