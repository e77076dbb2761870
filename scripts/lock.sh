#!/usr/bin/env bash
# `make lock`: re-resolve the locked environments from pyproject.toml.
#   requirements/dev.txt   `.[dev,embedded]`: what `make test`, `make lab` and CI install
#   requirements/demo.txt  `.[embedded]`: the little that `make demo` installs
#
# The library's own dependencies stay ranges in pyproject.toml; these files pin every package with
# hashes, for every platform (uv's universal resolution), so a release elsewhere cannot turn main
# red. Each file's first line records a hash of pyproject.toml's dependency tables:
# scripts/test.sh and tests/project/test_lock.py refuse a lock that no longer matches them.
#
#   scripts/lock.sh            keep the pins that still fit, resolve only what changed
#   scripts/lock.sh --upgrade  move every pin to the newest allowed release
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if command -v uv >/dev/null; then UV=(uv); else UV=(python3 -m uv); fi

lock() { # lock FILE EXTRA... -- UV-ARGS...
    local out=$1 extras=() names=() tmp
    shift
    while [[ $# -gt 0 && $1 != -- ]]; do extras+=(--extra "$1"); names+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    tmp="$(mktemp)"
    [[ -f "$out" ]] && grep -v '^#' "$out" >"$tmp" || true # the old pins are uv's preferences
    "${UV[@]}" pip compile pyproject.toml "${extras[@]}" --universal --python-version 3.11 \
        --generate-hashes --no-header --quiet "$@" -o "$tmp"
    {
        echo "# pyproject-deps-sha256: $(python3 scripts/deps_hash.py)"
        echo "# Made by \`make lock\` (scripts/lock.sh) from pyproject.toml, extras: ${names[*]};"
        echo "# do not edit by hand. \`make lock ARGS=--upgrade\` moves every pin to the newest release."
        grep -v '^#' "$tmp"
    } >"$out"
    rm -f "$tmp"
    echo "lock: wrote $out ($(grep -c '^[a-z0-9]' "$out") packages)"
}

mkdir -p requirements
lock requirements/dev.txt dev embedded -- "$@"
lock requirements/demo.txt embedded -- "$@"
