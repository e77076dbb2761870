#!/usr/bin/env bash
# The project's one test command (`make test` runs it; so does CI, through .ci/run).
#
#   scripts/test.sh [PYTEST ARGS...]   set up .venv if needed, then ruff check, mypy, pytest
#   scripts/test.sh --setup            only set up .venv
#
# Checks: ruff check, ruff format --check, mypy, the widgets' front end (npm ci, eslint, tsc), the
# dashboard's (npm ci, eslint, tsc --noEmit, vitest, npm run build), the
# documentation site's strict build (mkdocs.yml; it runs the notebooks), pytest.
# Setup: creates .venv (python3 -m venv) if it is missing, installs the locked dev/CI environment
# (requirements/dev.txt, every package pinned with hashes; `make lock` refreshes it) and then the
# project itself with `pip install --no-deps -e .`, whenever the lock or pyproject.toml changed
# since the last install (a stamp in .venv holds their hash) or the venv's taskq is not this
# checkout's; then it builds the dashboard (scripts/build_dashboard.sh; skipped when current, or
# in one line when npm is missing). A lock that no longer matches pyproject.toml's dependency ranges is an error.
# TASKQ_DEPS=latest installs `.[dev,embedded]` unlocked instead, at the newest allowed versions
# (the CI workflow's early-warning job).
# Every check runs even when an earlier one fails; the script fails if any did. pytest
# collecting no test at all (exit 5) is a failure, never a silent pass.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.taskq-install-stamp"
LOCK=requirements/dev.txt
DEPS=${TASKQ_DEPS:-locked}

say() { printf '\n==> %s\n' "$*"; }

setup() {
    if [[ ! -x "$VENV/bin/python" ]]; then
        say "creating $VENV with $("$PYTHON" --version 2>&1)"
        "$PYTHON" -m venv "$VENV"
    fi
    if [[ "$DEPS" == locked ]]; then
        local locked_for
        locked_for="$(sed -n 's/^# pyproject-deps-sha256: //p' "$LOCK")"
        if [[ "$locked_for" != "$("$PYTHON" scripts/deps_hash.py)" ]]; then
            echo "test.sh: $LOCK is stale: pyproject.toml's dependencies changed since it was made; run 'make lock'" >&2
            exit 1
        fi
    fi
    local want have=""
    want="$DEPS $(cat pyproject.toml benchmarks/pyproject.toml "$LOCK" | sha256sum | cut -d' ' -f1)"
    [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
    if [[ "$have" != "$want" ]] || ! "$VENV/bin/python" - <<'PY' 2>/dev/null; then
import os, sys, taskq
sys.exit(not os.path.samefile(os.path.dirname(taskq.__file__), "taskq"))
PY
        rm -f "$STAMP"
        local pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
        if [[ "$DEPS" == latest ]]; then
            say "installing the project into $VENV, unlocked at the newest allowed versions"
            "${pip[@]}" --upgrade -e '.[dev,embedded]'
            "${pip[@]}" --no-deps -e ./benchmarks # the harness, taskq-bench (`taskq bench`)
        else
            say "installing the locked environment into $VENV ($LOCK), then the project"
            "${pip[@]}" --require-hashes -r "$LOCK"
            "${pip[@]}" --no-deps -e . -e ./benchmarks # and the harness, taskq-bench (`taskq bench`)
        fi
        echo "$want" >"$STAMP"
    fi
}

setup
bash scripts/build_dashboard.sh || echo "test.sh: the dashboard did not build; its checks below say why" >&2
if [[ "${1:-}" == "--setup" ]]; then
    exit 0
fi

# shellcheck disable=SC1091
. "$VENV/bin/activate" # tests run the `taskq` CLI and `python` from the venv

failed=()
say "ruff check"
ruff check || failed+=("ruff check")
say "ruff format --check"
ruff format --check || failed+=("ruff format")
say "mypy"
mypy || failed+=("mypy")
say "widgets front end: npm ci, eslint, tsc --checkJs"
(cd widgets && npm ci --no-audit --no-fund --loglevel=error && npm run --silent lint && npm run --silent typecheck) ||
    failed+=("widgets front end")
say "dashboard front end: npm ci, eslint, tsc --noEmit, vitest, npm run build"
(cd api/dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run --silent lint &&
    npm run --silent typecheck && npm run --silent test && npm run --silent build) ||
    failed+=("dashboard front end")
say "deployment files: dclint (docker-compose.yml), hadolint (Dockerfile), nginx -t (deploy/nginx.conf)"
bash deploy/lint.sh || failed+=("deploy lint")
say "docs: mkdocs build --strict into site/ (the notebooks are executed on an embedded server)"
docs_start=$SECONDS
if NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir site; then
    echo "docs: the strict build took $((SECONDS - docs_start)) s"
    export TASKQ_DOCS_SITE=site # tests/project/test_docs_site.py checks this build instead of making its own
else
    failed+=("docs build")
    export TASKQ_DOCS_BUILD_FAILED=1 # the site's tests then fail at once instead of building it again
fi
say "pytest $*"
rc=0
python -m pytest "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "test.sh: pytest collected no tests (exit 5): that is a failure" >&2
    failed+=("pytest (no tests collected)")
elif [[ $rc -ne 0 ]]; then
    failed+=("pytest (exit $rc)")
fi

if ((${#failed[@]})); then
    printf 'test.sh: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
    exit 1
fi
