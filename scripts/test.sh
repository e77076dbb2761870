#!/usr/bin/env bash
# The project's one test command (`make test` runs it; so does CI, through .ci/run).
#
#   scripts/test.sh [PYTEST ARGS...]   set up .venv if needed, then ruff check, mypy, pytest
#   scripts/test.sh --setup            only set up: .venv, the npm packages, the dashboard build
#
# Checks: ruff check, ruff format --check, mypy, the widgets' front end (npm ci, eslint, tsc), the
# dashboard's (npm ci, eslint, tsc --noEmit, vitest, its build), the deployment files (deploy/lint.sh),
# the notebooks (pytest --nbmake, each run once, on a copy in build/executed/notebooks/), the
# documentation site's strict build (mkdocs.yml; it shows the outputs of that run), pytest (tests/).
# mypy, the front ends and the deployment files are checked side by side, each one's output printed
# whole when it ends; `npm ci` is skipped in a folder whose node_modules it made from the same
# package.json and lock (scripts/npm_ci.sh).
# Setup: creates .venv (python3 -m venv) if it is missing, installs the locked dev/CI environment
# (requirements/dev.txt, every package pinned with hashes; `make lock` refreshes it) and then the
# project itself with `pip install --no-deps -e .`, whenever the lock or pyproject.toml changed
# since the last install (a stamp in .venv holds their hash) or the venv's taskq is not this
# checkout's; meanwhile the npm packages come in and the dashboard is built
# (scripts/build_dashboard.sh; skipped when current, or in one line when npm is missing). A lock that no longer matches pyproject.toml's dependency ranges is an error.
# TASKQ_DEPS=latest installs `.[dev,embedded]` unlocked instead, at the newest allowed versions
# (the CI workflow's early-warning job).
# Every check runs even when an earlier one fails; the script fails if any did. pytest
# collecting no test at all (exit 5) is a failure, never a silent pass.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Bytecode caches on (__pycache__/ is gitignored): the tests start hundreds of Python processes
# (the CLI, workers, kernels), and without caches each compiles taskq from source and every pytest
# session redoes its assertion rewriting (collecting tests/ took 23.7 s of CPU without, 13.6 s with).
unset PYTHONDONTWRITEBYTECODE
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.taskq-install-stamp"
LOCK=requirements/dev.txt
DEPS=${TASKQ_DEPS:-locked}

say() { printf '\n==> %s  [at %d s]\n' "$*" "$SECONDS"; } # with the seconds since the start

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

LOGS="$(mktemp -d)" # the output of the steps that run side by side, printed when each is collected
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$LOGS"' EXIT # jobs are left only if setup failed
declare -A pids=()
# start NAME COMMAND...: run a step in the background (its output in $LOGS/NAME).
start() {
    local name=$1
    shift
    "$@" >"$LOGS/$name" 2>&1 &
    pids[$name]=$!
}
# collect NAME: wait for a started step, print its output; its exit status.
collect() {
    local rc=0
    wait "${pids[$1]}" || rc=$?
    cat "$LOGS/$1"
    return $rc
}

# Set-up: the npm packages and the dashboard's build come in beside the Python environment.
start widgets-npm bash scripts/npm_ci.sh widgets
start docs-npm bash scripts/npm_ci.sh scripts/docs_js # the site's mermaid and Swagger UI (docs_hooks.py)
start dashboard-build bash scripts/build_dashboard.sh
setup
collect dashboard-build || echo "test.sh: the dashboard did not build; its checks below say why" >&2
widgets_npm=0
collect widgets-npm || widgets_npm=$?
collect docs-npm || echo "test.sh: npm ci in scripts/docs_js failed; the docs build tries again and says why" >&2
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

# mypy, the front ends' checks and the deployment files' run side by side (2 cores: mypy takes one).
start mypy mypy
widgets_checks() {
    ((widgets_npm == 0)) && cd widgets && npm run --silent lint && npm run --silent typecheck
}
start widgets widgets_checks
dashboard_checks() {
    bash scripts/npm_ci.sh api/dashboard && cd api/dashboard && npm run --silent lint &&
        npm run --silent typecheck && npm run --silent test && bash ../../scripts/build_dashboard.sh
}
start dashboard dashboard_checks
start deploy bash deploy/lint.sh
say "mypy"
collect mypy || failed+=("mypy")
say "widgets front end: npm ci (above, unless current), eslint, tsc --checkJs"
collect widgets || failed+=("widgets front end")
say "dashboard front end: npm ci (unless current), eslint, tsc --noEmit, vitest, the build (scripts/build_dashboard.sh)"
collect dashboard || failed+=("dashboard front end")
say "deployment files: dclint (docker-compose.yml), hadolint (Dockerfile), nginx -t (deploy/nginx.conf)"
collect deploy || failed+=("deploy lint")

# Each notebook runs once: as a test (nbmake, on a copy, which --overwrite fills with the outputs),
# and the site shows those outputs; notebooks/ in the checkout stays as it is.
NB_RUN=build/executed/notebooks
say "notebooks: pytest --nbmake on a copy in $NB_RUN (its outputs go into the docs)"
rm -rf "$NB_RUN" && mkdir -p "$(dirname "$NB_RUN")" && cp -r notebooks "$NB_RUN"
nb_start=$SECONDS
rc=0
# Without the caller's TASKQ_REDIS_URL: the notebooks get a private server (notebooks/conftest.py).
env -u TASKQ_REDIS_URL python -m pytest -p no:cacheprovider --overwrite "$NB_RUN" || rc=$?
echo "notebooks: $((SECONDS - nb_start)) s"
((rc == 0)) || failed+=("notebooks (pytest exit $rc)")
say "docs: mkdocs build --strict into site/ (the notebooks as the tests above executed them)"
docs_start=$SECONDS
if TASKQ_DOCS_NOTEBOOKS=$NB_RUN NO_MKDOCS_2_WARNING=1 mkdocs build --strict --site-dir site; then
    echo "docs: the strict build took $((SECONDS - docs_start)) s"
    export TASKQ_DOCS_SITE=site # tests/project/test_docs_site.py checks this build instead of making its own
else
    failed+=("docs build")
    export TASKQ_DOCS_BUILD_FAILED=1 # the site's tests then fail at once instead of building it again
fi
say "pytest $*"
rc=0
# tests/ only (the notebooks ran above), unless the arguments name what to run. The 30 slowest
# tests are listed at the end, so a CI log shows where the suite's time goes.
python -m pytest -o testpaths=tests --durations=30 "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "test.sh: pytest collected no tests (exit 5): that is a failure" >&2
    failed+=("pytest (no tests collected)")
elif [[ $rc -ne 0 ]]; then
    failed+=("pytest (exit $rc)")
fi

echo "test.sh: $SECONDS s in all"
if ((${#failed[@]})); then
    printf 'test.sh: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
    exit 1
fi
