#!/usr/bin/env bash
# Build the React dashboard into the Python package (api/taskq_api/dashboard_dist/), which
# `taskq serve` serves at /. A wheel built afterwards carries it, so running it needs no Node.js.
#
#   scripts/build_dashboard.sh           npm ci (unless current) + npm run build in api/dashboard, unless the build is current
#   scripts/build_dashboard.sh --force   build even if it is current
#
# Without npm it says so in one line and exits 0: taskq serve then serves the API only.
# "Current" means: the build exists and a stamp holds the hash of package-lock.json, the sources and the
# configuration it was made from.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../api/dashboard"
DIST=../taskq_api/dashboard_dist
STAMP=.build-stamp # beside the sources (gitignored): a build into DIST empties that folder

if ! command -v npm >/dev/null; then
    echo "build_dashboard: npm not found, dashboard not built (taskq serve serves the API only; apt-get install nodejs npm)"
    exit 0
fi
want="$(cat package.json package-lock.json index.html ./*.config.* tsconfig.json \
    $(find src -type f | LC_ALL=C sort) | sha256sum | cut -d' ' -f1)"
if [[ "${1:-}" != "--force" && -f "$DIST/index.html" && "$(cat "$STAMP" 2>/dev/null)" == "$want" ]]; then
    echo "build_dashboard: $DIST is current"
    exit 0
fi
echo "build_dashboard: npm ci && npm run build in api/dashboard (node $(node --version))"
bash ../../scripts/npm_ci.sh . # skipped when node_modules is from this package.json and lock
npm run --silent build
echo "$want" >"$STAMP"
