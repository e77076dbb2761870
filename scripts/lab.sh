#!/usr/bin/env bash
# `make lab`: JupyterLab on the quickstart notebook, in .venv (set up by scripts/test.sh --setup).
# The kernels find Redis as taskq always does: TASKQ_REDIS_URL, localhost:6379, else an embedded
# server. Works as root (containers, CI machines: --allow-root) and headless (no display: no
# browser is opened, and the URL to open is printed). Extra arguments go to `jupyter lab`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
bash scripts/test.sh --setup
flags=(--ip=127.0.0.1)
if [[ "$(id -u)" == 0 ]]; then
    flags+=(--allow-root)
fi
if [[ "$(uname)" != Darwin && -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
    flags+=(--no-browser)
    echo "lab: no display here, so no browser is opened: open the http://127.0.0.1:... URL printed below"
fi
export PATH="$PWD/$VENV/bin:$PATH"
exec jupyter lab "${flags[@]}" "$@" notebooks/01_quickstart.ipynb
