#!/usr/bin/env bash
# `npm ci` in a folder, unless its node_modules was installed by this script from the package.json
# and package-lock.json it has now (a stamp in node_modules holds their hash). scripts/test.sh and
# scripts/build_dashboard.sh use it, so that one run installs each folder's packages once.
#
#   scripts/npm_ci.sh DIR
set -euo pipefail
dir=${1:?usage: scripts/npm_ci.sh DIR}
cd "$dir"
stamp=node_modules/.taskq-npm-ci-stamp
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [[ -d node_modules && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    echo "npm_ci: $dir/node_modules is current"
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
