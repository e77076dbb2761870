"""Run the benchmark suite for taskq and its peers, each against a private redis-server.

    python -m benchmarks.run --suite short --systems taskq,rq,arq,saq,celery,dramatiq,huey,taskiq \\
        --out bench-results/

Peers run in the virtualenvs built by ``bash benchmarks/setup_peers.sh`` (``.venv-bench``
and ``.venv-bench-taskiq``; ``--venv-dir`` if built elsewhere). Every system gets a fresh
``redis-server`` (no persistence) and FLUSHALL before each measurement. A system that
cannot run is reported with its error, never dropped. ``--rounds N`` repeats everything N
times, systems interleaved, and reports medians. Writes ``bench-<suite>-<time>.json``
(machine, versions, settings, rows, errors, latency CDFs), the rows as ``.csv``, and
``.md`` tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from benchmarks.report import render
from benchmarks.results import (
    COMPLETION_METHOD,
    Results,
    Row,
    loadavg,
    machine_info,
    merge_rounds,
    python_version,
    redis_server_info,
)
from benchmarks.suite import SUITES, Suite
from benchmarks.system_run import EXPERIMENTS
from benchmarks.systems import SYSTEMS, VENV_DIR_ENV, python_for
from benchmarks.systems.base import ROOT
from taskq.server import EmbeddedServer


def redis_cpu_s(url: str) -> float:
    with redis.Redis.from_url(url) as client:
        info: Any = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run_one(system: str, suite: Suite, experiments: Sequence[str], out_dir: Path) -> dict[str, Any]:
    """One system's document from ``benchmarks.system_run`` (or one saying why it could not run)."""
    python = python_for(system)
    if not Path(python).exists():
        return failed(system, f"no Python at {python}: build the peers' venv with `bash benchmarks/setup_peers.sh`")
    fragment = out_dir / "parts" / f"{system}.json"
    fragment.parent.mkdir(parents=True, exist_ok=True)
    fragment.unlink(missing_ok=True)
    with EmbeddedServer(kind="redis-server") as server:
        argv = [python, "-m", "benchmarks.system_run", "--system", system, "--url", server.url,
                "--suite", suite.name, "--experiments", ",".join(experiments), "--out", str(fragment),
                "--logs", str(out_dir / "logs")]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        load_before, cpu_before = loadavg(), redis_cpu_s(server.url)
        try:
            proc = subprocess.run(argv, env=env, cwd=ROOT, timeout=suite.system_timeout_s, stdout=subprocess.PIPE,
                                  stderr=None, text=True)  # fmt: skip
        except subprocess.TimeoutExpired:
            return failed(system, f"did not finish within {suite.system_timeout_s:.0f}s")
        cpu_used = redis_cpu_s(server.url) - cpu_before
    if proc.returncode != 0 or not fragment.exists():
        return failed(system, f"benchmarks.system_run exited with {proc.returncode}: {proc.stdout[-1500:]}")
    document: dict[str, Any] = json.loads(fragment.read_text())
    document["info"].update(loadavg_before=load_before, loadavg_after=loadavg(), redis_cpu_s=round(cpu_used, 2))
    return document


def failed(system: str, error: str) -> dict[str, Any]:
    row = Row(system, "system", "all", "ran", None, "", note=error[:500])
    entry = {"system": system, "experiment": "system", "case": "all", "error": error}
    return {"system": system, "info": {"error": error}, "rows": [asdict(row)], "errors": [entry], "details": {}}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="short", choices=sorted(SUITES))
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ",".join(SYSTEMS))
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS), help="subset of " + ",".join(EXPERIMENTS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every system this often, interleaved")
    parser.add_argument("--venv-dir", help="where setup_peers.sh built the peers' virtualenvs (default: the repo)")
    args = parser.parse_args(argv)
    if args.venv_dir:
        os.environ[VENV_DIR_ENV] = args.venv_dir
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    suite = SUITES[args.suite]
    argv_used = sys.argv if argv is None else ["benchmarks.run", *argv]
    results = run_all(systems, suite, args.experiments.split(","), args.out, argv_used, args.rounds)
    stem = f"bench-{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    json_path, csv_path = results.write(args.out, stem)
    tables = render(results.as_dict())
    (args.out / f"{stem}.md").write_text(tables)
    print(tables)
    print(f"written: {json_path}, {csv_path}, {args.out / (stem + '.md')}")


def run_all(
    systems: Sequence[str], suite: Suite, experiments: Sequence[str], out: Path, argv: Sequence[str], rounds: int = 1
) -> Results:
    """Run every system ``rounds`` times, interleaved (a shared machine's load drifts: each
    round sees it at a different moment); each figure is the median over rounds."""
    command = "python -m benchmarks.run " + shlex.join(argv[1:] if argv and argv[0].endswith(".py") else argv)
    machine = machine_info() | {"loadavg_before": loadavg()}
    with EmbeddedServer(kind="redis-server") as probe:
        machine["redis_server"] = redis_server_info(probe.url)
    machine["pythons"] = {s: python_version(python_for(s)) for s in systems}
    settings = {"suite": suite.as_dict(), "systems": list(systems), "experiments": list(experiments),
                "rounds": rounds, "command": command, "completion": COMPLETION_METHOD}  # fmt: skip
    results = Results(machine, settings)
    per_round: list[list[Row]] = []
    for number in range(1, rounds + 1):
        rows: list[Row] = []
        for system in systems:
            print(f"== round {number}/{rounds}: {system}", file=sys.stderr, flush=True)
            document = run_one(system, suite, experiments, out)
            results.systems.setdefault(system, {"rounds": []})["rounds"].append(document["info"])
            rows += [Row(**row) for row in document["rows"]]
            results.errors += [e | {"round": str(number)} for e in document["errors"]]
            results.details.setdefault(system, []).append(document["details"])
        per_round.append(rows)
    results.rows = merge_rounds(per_round)
    machine["loadavg_after"] = loadavg()
    return results


if __name__ == "__main__":
    main()
