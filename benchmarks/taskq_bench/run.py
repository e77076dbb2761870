"""Run the benchmark suite for taskq and its peers, each against a private redis-server.

    python -m taskq_bench.run --suite short --systems taskq,rq,arq,saq,celery,dramatiq,huey,taskiq \\
        --out bench-results/

Peers run in the virtualenvs built by ``bash benchmarks/setup_peers.sh`` (``.venv-bench``
and ``.venv-bench-taskiq``; ``--venv-dir`` if built elsewhere). Every system gets a fresh
private ``redis-server`` (no persistence) and FLUSHALL before each measurement; with
``--url`` every system uses that server instead, and it is FLUSHALLed just the same (all its
data is lost: never point it at a Redis that holds anything). A system that cannot run is
reported with its error, never dropped. ``--rounds N`` repeats everything N
times (default: the suite's, 3 for ``short`` and ``full``), the systems' order rotated
each round (``--seed S``: shuffled instead, reproducibly), and reports the median and
the spread of the rounds; the load average around every measurement is recorded, and so is
the CPU used meanwhile by processes outside the benchmark's own process tree: a measurement
during which they used more than 10% of the machine is flagged (:mod:`taskq_bench.fairness`).
Writes ``bench-<suite>-<time>.json`` (machine, versions, settings, rows, errors, latency
CDFs), the rows as ``.csv``, and ``.md`` tables.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import redis

from taskq.cli import url_problem
from taskq.errors import TaskqError
from taskq.server import EmbeddedServer, redact_url
from taskq_bench.fairness import round_order
from taskq_bench.outside import TREE_ROOT_ENV
from taskq_bench.report import render
from taskq_bench.results import (
    COMPLETION_METHOD,
    Results,
    Row,
    loadavg,
    machine_info,
    merge_rounds,
    python_version,
    redis_server_info,
)
from taskq_bench.suite import SUITES, Suite
from taskq_bench.system_run import EXPERIMENTS, PROGRESS_ENV
from taskq_bench.systems import SYSTEMS, VENV_DIR_ENV, python_for
from taskq_bench.systems.base import HARNESS_PATH, ROOT

PRIVATE_SERVER = "a private redis-server per system"


class BenchmarkOptionError(TaskqError, ValueError):
    """A benchmark run was asked for something that does not exist (a system, an experiment,
    a suite), a round count below one, or a URL that is not a Redis URL. Nothing ran."""


class BenchmarkUnavailable(TaskqError):
    """Something a benchmark run needs is not installed: without ``--url``, a ``redis-server``
    binary on PATH (each system gets a private one). Nothing ran. (A peer whose virtualenv is
    missing is not this error: it is reported in the results as unable to run.)"""


def check_installed(url: str | None) -> None:
    if url is None and shutil.which("redis-server") is None:
        raise BenchmarkUnavailable(
            "the benchmarks run each system on a private redis-server, and there is none on PATH: install it "
            "(e.g. `apt install redis-server`), or pass --url to a Redis it may FLUSHALL"
        )


def check_options(suite: str, systems: Sequence[str], experiments: Sequence[str], rounds: int, url: str | None) -> None:
    """Raise :class:`BenchmarkOptionError` for anything ``run_all`` cannot do, before it starts."""
    problems = []
    if suite not in SUITES:
        problems.append(f"unknown suite {suite!r}; known: {', '.join(sorted(SUITES))}")
    if not systems:
        problems.append("no systems given")
    if unknown := [s for s in systems if s not in SYSTEMS]:
        problems.append(f"unknown systems: {', '.join(unknown)}; known: {', '.join(SYSTEMS)}")
    if not experiments:
        problems.append("no experiments given")
    if unknown := [e for e in experiments if e not in EXPERIMENTS]:
        problems.append(f"unknown experiments: {', '.join(unknown)}; known: {', '.join(EXPERIMENTS)}")
    if rounds < 1:
        problems.append(f"rounds must be at least 1, got {rounds}")
    problem = None if url is None else url_problem(url)
    if problem:
        problems.append(problem)
    if problems:
        raise BenchmarkOptionError("; ".join(problems))


def split_list(text: str) -> list[str]:
    """``"taskq, rq,"`` -> ``["taskq", "rq"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]


def flush_warning(url: str) -> str:
    return (f"WARNING: benchmarking against {redact_url(url)}: every database on it is FLUSHED (FLUSHALL) "
            "before each measurement; whatever it holds will be lost.")  # fmt: skip


@contextlib.contextmanager
def server_for_run(url: str | None) -> Iterator[str]:
    """The URL one system runs against: ``url`` if given (flushed first), else a fresh private
    redis-server that stops afterwards."""
    if url is not None:
        with redis.Redis.from_url(url) as client:
            client.flushall()
        yield url
        return
    with EmbeddedServer(kind="redis-server") as server:
        yield server.url


def redis_cpu_s(url: str) -> float:
    with redis.Redis.from_url(url) as client:
        info: Any = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run_showing_progress(argv: Sequence[str], env: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    """Run ``argv`` with its stdout (the progress bars) on ours and its stderr copied to ours as
    it comes, keeping the last 4 kB for the results (a failing system's traceback); its exit
    code, or None if it was killed after ``timeout_s``."""
    tail: collections.deque[str] = collections.deque(maxlen=200)

    def copy(stream: IO[str]) -> None:
        for line in stream:
            sys.stderr.write(line)
            tail.append(line)

    with subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True, errors="replace") as proc:
        assert proc.stderr is not None
        copier = threading.Thread(target=copy, args=(proc.stderr,), daemon=True)
        copier.start()
        try:
            returncode: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            returncode = None
        copier.join(timeout=5)
    return returncode, "".join(tail)[-4000:]


def run_one(
    system: str, suite: Suite, experiments: Sequence[str], out_dir: Path, url: str | None = None, round_number: int = 1
) -> dict[str, Any]:
    """One system's document from ``taskq_bench.system_run`` (or one saying why it could not run),
    on ``url`` or, by default, on a private redis-server of its own."""
    python = python_for(system)
    if not Path(python).exists():
        return failed(system, f"no Python at {python}: build the peers' venv with `bash benchmarks/setup_peers.sh`")
    fragment = out_dir / "parts" / f"{system}.json"
    fragment.parent.mkdir(parents=True, exist_ok=True)
    fragment.unlink(missing_ok=True)
    with server_for_run(url) as server_url:
        argv = [python, "-m", "taskq_bench.system_run", "--system", system, "--url", server_url,
                "--suite", suite.name, "--experiments", ",".join(experiments), "--out", str(fragment),
                "--logs", str(out_dir / "logs"), "--round", str(round_number)]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=HARNESS_PATH)
        env.setdefault(TREE_ROOT_ENV, str(os.getpid()))  # this process's tree is the benchmark's own
        if not sys.stdout.isatty():  # a log file, a notebook: no progress bars (every frame would stay)
            env[PROGRESS_ENV] = "0"
        load_before, cpu_before = loadavg(), redis_cpu_s(server_url)
        returncode, stderr_tail = run_showing_progress(argv, env, suite.system_timeout_s)
        if returncode is None:
            return failed(system, f"did not finish within {suite.system_timeout_s:.0f}s: {stderr_tail[-1000:]}")
        cpu_used = redis_cpu_s(server_url) - cpu_before
    if returncode != 0 or not fragment.exists():
        return failed(system, f"taskq_bench.system_run exited with {returncode}: {stderr_tail[-1500:]}")
    document: dict[str, Any] = json.loads(fragment.read_text())
    document["info"].update(loadavg_before=load_before, loadavg_after=loadavg(), redis_cpu_s=round(cpu_used, 2),
                            **outside_summary(document["rows"]))  # fmt: skip
    return document


def outside_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A round's highest share of the machine used outside the benchmark during a measurement,
    and how many of its figures were flagged."""
    shares = [row["outside_share"] for row in rows if row.get("outside_share") is not None]
    return {"outside_share_max": max(shares, default=None), "flagged": sum(bool(row.get("loaded")) for row in rows)}


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
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="repeat every system this often, order rotated each round (default: the suite's)",
    )
    parser.add_argument("--seed", type=int, default=None, help="shuffle the order each round with this seed")
    parser.add_argument("--venv-dir", help="where setup_peers.sh built the peers' virtualenvs (default: the repo)")
    parser.add_argument("--url", help="run on this Redis instead of a private redis-server per system; "
                        "it is FLUSHALLed before each measurement (all its data is lost)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        command = "python -m taskq_bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)
        bench(args.suite, split_list(args.systems), split_list(args.experiments), args.out, rounds=args.rounds,
              url=args.url, venv_dir=args.venv_dir, command=command, seed=args.seed)  # fmt: skip
    except BenchmarkOptionError as exc:
        parser.error(str(exc))
    except BenchmarkUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def bench(
    suite_name: str,
    systems: Sequence[str],
    experiments: Sequence[str],
    out: Path,
    *,
    rounds: int | None = None,
    url: str | None = None,
    venv_dir: str | None = None,
    command: str = "",
    echo: bool = True,
    seed: int | None = None,
) -> Path:
    """Check the options, run every system, write the JSON, CSV and Markdown files into ``out``
    and print the tables (``echo``); the JSON file's path. ``python -m taskq_bench.run`` and
    ``taskq bench`` both come here; ``command`` is recorded as the one that reproduces the run.
    ``rounds`` None: the suite's."""
    if rounds is None:
        rounds = SUITES[suite_name].rounds if suite_name in SUITES else 1
    check_options(suite_name, systems, experiments, rounds, url)
    check_installed(url)
    if venv_dir:
        os.environ[VENV_DIR_ENV] = venv_dir
    if url is not None:
        print(flush_warning(url), file=sys.stderr, flush=True)
    suite = SUITES[suite_name]
    out = Path(out).resolve()  # the systems' own runs (run_one) work in the repository, not here
    results = run_all(systems, suite, experiments, out, command, rounds, url, seed)
    stem = f"bench-{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    json_path, csv_path = results.write(out, stem)
    tables = render(results.as_dict())
    (out / f"{stem}.md").write_text(tables)
    if echo:
        print(tables)
        print(f"written: {json_path}, {csv_path}, {out / (stem + '.md')}")
    return json_path


def run_all(
    systems: Sequence[str],
    suite: Suite,
    experiments: Sequence[str],
    out: Path,
    command: str,
    rounds: int = 1,
    url: str | None = None,
    seed: int | None = None,
) -> Results:
    """Run every system ``rounds`` times, interleaved and in an order rotated each round (or
    shuffled with ``seed``): a shared machine's load drifts, and no system always goes first;
    each figure is the median over rounds, its ``runs`` every round's value. On ``url`` if
    given (FLUSHALLed), else on a private redis-server per system."""
    machine = machine_info() | {"loadavg_before": loadavg()}
    with server_for_run(url) as probe_url:
        machine["redis_server"] = redis_server_info(probe_url)
    machine["redis_server"]["used"] = PRIVATE_SERVER if url is None else redact_url(url)
    machine["pythons"] = {s: python_version(python_for(s)) for s in systems}
    settings: dict[str, Any] = {"suite": suite.as_dict(), "systems": list(systems), "experiments": list(experiments),
                "rounds": rounds, "command": command, "completion": COMPLETION_METHOD,
                "order": "rotated" if seed is None else "shuffled", "seed": seed, "orders": []}  # fmt: skip
    results = Results(machine, settings)
    orders: list[list[str]] = settings["orders"]
    per_round: list[list[Row]] = []
    for number in range(1, rounds + 1):
        rows: list[Row] = []
        order = round_order(systems, number, seed)
        orders.append(order)
        for system in order:
            print(f"== round {number}/{rounds}: {system}", file=sys.stderr, flush=True)
            document = run_one(system, suite, experiments, out, url, number)
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
