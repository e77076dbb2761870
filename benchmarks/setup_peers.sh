#!/usr/bin/env bash
# Build the isolated virtualenvs the benchmark harness runs the peer systems in. Their pins
# conflict with taskq's development environment and with each other (arq needs redis<6,
# Celery's kombu redis<6.5, taskiq-redis>=1.2 redis>=8), so there are two:
#
#   .venv-bench         rq, arq, saq, celery[redis], dramatiq[redis], huey
#   .venv-bench-taskiq  taskiq, taskiq-redis
#
# each with taskq and the harness (taskq-bench, ./benchmarks) installed editable from this repo,
# and rich.
#
#   bash benchmarks/setup_peers.sh                 # create or update both
#   BENCH_VENV_DIR=/tmp bash benchmarks/setup_peers.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${BENCH_VENV_DIR:-$root}"
python="${PYTHON:-python3}"

build() {
    local venv="$1"; shift
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root" rich "$@"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root/benchmarks"
    "$venv/bin/python" - "$@" <<'PY'
import re
import sys
from importlib.metadata import version

for spec in ["taskq", "redis", *sys.argv[1:]]:
    name = re.split(r"[\[<>=!~]", spec)[0]
    print(f"  {name:14} {version(name)}")
PY
    echo "ready: $venv"
}

build "$dir/.venv-bench" rq arq saq "celery[redis]" "dramatiq[redis]" huey
build "$dir/.venv-bench-taskiq" taskiq taskiq-redis
