#!/usr/bin/env bash
# The demo on the embedded default (`make demo`): sets up .venv if needed (see scripts/test.sh),
# then runs examples/demo.py, which starts its own Redis and stops it at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
bash scripts/test.sh --setup
exec "$VENV/bin/python" examples/demo.py "$@"
