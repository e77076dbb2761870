"""Every experiment of a suite for one system, in that system's own Python.

``python -m taskq_bench.system_run --system rq --url redis://… --suite short --out f.json``
is started by :mod:`taskq_bench.run` (with the peers' virtualenv for peers). It imports
the adapter, starts the system's worker commands, drives producer processes
(:mod:`taskq_bench.producer`) and reads the tasks' own stamps (:mod:`taskq_bench.recorder`).
It writes one JSON document: the system's version, rows, errors and details.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from taskq_bench import grid, procs, recorder
from taskq_bench.fairness import Load, load_fields, measured_load
from taskq_bench.producer import Job, Mode, run_producers
from taskq_bench.results import Row
from taskq_bench.stats import LogHistogram, median, summarize_ms
from taskq_bench.suite import SUITES, Suite
from taskq_bench.systems.base import HARNESS_PATH, ROOT, Adapter, WorkerSetting, Workload

POLL_S = 0.01
WARMUP_TASKS = 20
MAX_PRODUCERS = 4
RATE_PER_PRODUCER = 1500.0
STARTUP_S = 30.0
PREFILL_PRODUCERS = 4
#: "0": no progress bars (``taskq_bench.run`` sets it when its own output is not a terminal).
PROGRESS_ENV = "BENCH_PROGRESS"


class RunFailed(RuntimeError):
    """One case of one experiment could not be measured."""


@dataclass
class Context:
    system: str
    url: str
    adapter: Adapter
    suite: Suite
    logs: Path
    client: redis.Redis
    progress: Progress
    rows: list[Row] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    round_number: int = 1
    """Which round of the run this is (the order of the drain settings rotates with it)."""

    @property
    def python(self) -> str:
        return sys.executable

    def add(self, experiment: str, case: str, metric: str, value: float | None, unit: str, **extra: Any) -> None:
        self.rows.append(Row(self.system, experiment, case, metric, value, unit, **extra))

    def fail(self, experiment: str, case: str, metric: str, unit: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self.errors.append({"system": self.system, "experiment": experiment, "case": case, "error": message})
        self.add(experiment, case, metric, None, unit, note=message[:500])


@contextmanager
def guarded(ctx: Context, experiment: str, case: str, metric: str, unit: str) -> Iterator[None]:
    """Record a failing case as a row with the error, and go on with the next one."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - reported in the results, never dropped
        traceback.print_exc(file=sys.stderr)
        ctx.fail(experiment, case, metric, unit, exc)


# ---------------------------------------------------------------------------
# Workers


@contextmanager
def running_workers(ctx: Context, setting: WorkerSetting, tag: str) -> Iterator[list[procs.Launched]]:
    env = dict(os.environ, PYTHONPATH=HARNESS_PATH, PYTHONUNBUFFERED="1", **{recorder.URL_ENV: ctx.url})
    env.update(ctx.adapter.worker_env(setting))
    log = ctx.logs / f"{ctx.system}-{tag}.log"
    launched = [procs.launch(argv, env, ROOT, log) for argv in ctx.adapter.worker_commands(setting, ctx.python)]
    try:
        yield launched
    finally:
        procs.stop(launched)


def wait_done(ctx: Context, count: int, timeout_s: float, workers: Sequence[procs.Launched]) -> int:
    """Poll the tasks' counter until it reaches ``count`` or ``timeout_s`` passes; the count seen."""
    deadline = time.monotonic() + timeout_s
    next_check = 0.0
    done = recorder.done_count(ctx.client)
    while done < count and time.monotonic() < deadline:
        time.sleep(POLL_S)
        done = recorder.done_count(ctx.client)
        if time.monotonic() > next_check:
            procs.check_alive(workers)
            next_check = time.monotonic() + 0.5
    return done


def prefill(ctx: Context, workload: Workload, count: int) -> None:
    """Queue ``count`` tasks before any worker runs (from up to 4 processes: not measured)."""
    producers = min(PREFILL_PRODUCERS, math.ceil(count / 5000))
    shares = [count // producers + (i < count % producers) for i in range(producers)]
    jobs = [Job("prefill", workload, n) for n in shares if n]
    run_producers(ctx.python, ctx.system, ctx.url, jobs, timeout_s=300)


# ---------------------------------------------------------------------------
# Enqueue


def enqueue_rate(ctx: Context, mode: Mode, producers: int, loads: list[Load]) -> float:
    ctx.client.flushall()
    count = ctx.suite.enqueue_count if mode == "single" else ctx.suite.bulk_count
    jobs = [Job(mode, "noop", count, ctx.suite.bulk_batch) for _ in range(producers)]
    with measured_load() as load:
        t0, reports = run_producers(ctx.python, ctx.system, ctx.url, jobs, timeout_s=300)
    loads.append(load)
    return float(sum(r["sent"] for r in reports) / (max(r["ended"] for r in reports) - t0))


def bench_enqueue(ctx: Context) -> None:
    modes: list[Mode] = ["single", "bulk"] if ctx.adapter.bulk_api else ["single"]
    cases = [(mode, k) for mode in modes for k in ctx.suite.producers]
    task = ctx.progress.add_task(f"{ctx.system} enqueue", total=len(cases) * ctx.suite.enqueue_reps)
    for mode, producers in cases:
        case = f"{mode}, {producers} producer{'s' if producers > 1 else ''}"
        with guarded(ctx, "enqueue", case, "tasks_per_s", "tasks/s"):
            runs: list[float] = []
            loads: list[Load] = []
            for _ in range(ctx.suite.enqueue_reps):
                runs.append(enqueue_rate(ctx, mode, producers, loads))
                ctx.progress.advance(task)
            note = f"bulk API: {ctx.adapter.bulk_api}" if mode == "bulk" else ""
            ctx.add("enqueue", case, "tasks_per_s", round(median(runs)), "tasks/s",
                    runs=[round(r) for r in runs], note=note, **load_fields(loads))  # fmt: skip
    if not ctx.adapter.bulk_api:
        ctx.add("enqueue", "bulk, 1 producer", "tasks_per_s", None, "tasks/s", note="no bulk enqueue API")


# ---------------------------------------------------------------------------
# Drain


@dataclass(frozen=True, slots=True)
class Drain:
    tasks_per_s: float
    done: int
    count: int
    busy_s: float
    load: Load | None = None

    @property
    def partial(self) -> bool:
        return self.done < self.count


def drain_once(ctx: Context, setting: WorkerSetting, workload: Workload, count: int) -> Drain:
    """Pre-fill ``count`` tasks, start the workers, time first start → last finish."""
    ctx.client.flushall()
    with measured_load() as load:
        prefill(ctx, workload, count)
        with running_workers(ctx, setting, f"drain-{workload}") as workers:
            wait_until_drained(ctx, count, workers)
            done, window = recorder.progress(ctx.client)
    if window is None or done == 0:
        raise RunFailed(f"no task of {count} ran (see {workers[0].log})")
    busy = max(window[1] - window[0], 1e-6)
    return Drain(done / busy, done, count, busy, load)


def wait_until_drained(ctx: Context, count: int, workers: Sequence[procs.Launched]) -> None:
    """Wait for the first task (start-up, up to ``STARTUP_S``), then up to the drain timeout
    for the rest (a run stopped there is reported as partial)."""
    if wait_done(ctx, 1, STARTUP_S, workers) >= 1:
        wait_done(ctx, count, ctx.suite.drain_timeout_s, workers)


def drain_runs(
    ctx: Context, setting: WorkerSetting, workload: Workload, count: int, reps: int, task: Any
) -> list[Drain]:
    """``reps`` drains; once a run is partial (the system is slower than the timeout allows),
    later ones queue only what can be drained in time, with a margin (less pre-fill time)."""
    runs: list[Drain] = []
    for _ in range(reps):
        runs.append(drain_once(ctx, setting, workload, count))
        ctx.progress.advance(task)
        if runs[-1].partial:
            count = min(count, int(runs[-1].tasks_per_s * ctx.suite.drain_timeout_s * 1.5) + 500)
    return runs


def measured_drain(runs: list[Drain]) -> grid.Measured:
    partial = [r for r in runs if r.partial]
    note = f"partial: {partial[0].done} of {partial[0].count} tasks done in {partial[0].busy_s:.1f}s" if partial else ""
    loads = [r.load for r in runs if r.load is not None]
    return grid.Measured(
        round(median([r.tasks_per_s for r in runs])), [round(r.tasks_per_s) for r in runs], note, loads
    )


def drain_row(ctx: Context, experiment: str, case: str, setting: WorkerSetting, runs: list[Drain]) -> float:
    measured = measured_drain(runs)
    ctx.add(experiment, case, "tasks_per_s", measured.value, "tasks/s", setting=setting.label, runs=measured.runs,
            note=measured.note, **load_fields(measured.loads))  # fmt: skip
    return measured.value or 0.0


def bench_drain(ctx: Context) -> WorkerSetting:
    """Drain each of the suite's drain workloads (the I/O task first) at every setting of
    :func:`taskq_bench.grid.plan`; returns the best setting for the first workload."""
    adapter, suite = ctx.adapter, ctx.suite
    points = grid.plan(adapter, suite.grid, suite.grid_processes(), suite.max_settings)
    runnable = sum(p.setting is not None for p in points)
    best: WorkerSetting | None = None
    for workload in suite.drain_workloads:
        task = ctx.progress.add_task(f"{ctx.system} drain {workload}", total=runnable * suite.drain_reps)

        def measure(setting: WorkerSetting, workload: Workload = workload, task: Any = task) -> grid.Measured:
            return measured_drain(drain_runs(ctx, setting, workload, suite.drain_count, suite.drain_reps, task))

        def on_error(label: str, exc: BaseException, workload: Workload = workload) -> None:
            message = f"{label}: {type(exc).__name__}: {exc}"
            ctx.errors.append({"system": ctx.system, "experiment": "drain", "case": workload, "error": message})

        rows, best_here = grid.drain_grid(ctx.system, workload, points, measure, ctx.round_number, on_error)
        ctx.rows += rows
        best = best or best_here
    return best or default_setting(adapter)


def drain_point(
    system: str,
    url: str,
    setting: WorkerSetting,
    workload: Workload,
    count: int,
    logs: Path,
    timeout_s: float = 30.0,
    load: Callable[[str, str], Adapter] | None = None,
) -> Drain:
    """One drain run outside a suite, for notebooks and experiments: ``count`` tasks of
    ``workload`` queued, then ``system``'s own workers started with ``setting`` and timed
    from the first task's start to the last one's finish (partial after ``timeout_s``).
    Runs in this Python, so ``system`` must be importable here (taskq always is). ``url``'s
    Redis is FLUSHALLed first."""
    from taskq_bench.systems import load_adapter

    suite = replace(SUITES["tiny"], drain_timeout_s=timeout_s)
    previous = os.environ.get(recorder.URL_ENV)
    os.environ[recorder.URL_ENV] = url
    try:
        adapter = (load or load_adapter)(system, url)
        with Progress(disable=True) as progress, redis.Redis.from_url(url) as client:
            return drain_once(Context(system, url, adapter, suite, logs, client, progress), setting, workload, count)
    finally:
        if previous is None:
            os.environ.pop(recorder.URL_ENV, None)
        else:
            os.environ[recorder.URL_ENV] = previous


def default_setting(adapter: Adapter) -> WorkerSetting:
    """The setting used when no drain run chose one: the first 2-core candidate."""
    return (adapter.two_core or adapter.one_process)[0]


def bench_workloads(ctx: Context, setting: WorkerSetting) -> None:
    suite = ctx.suite
    if not suite.workloads:
        return
    task = ctx.progress.add_task(f"{ctx.system} cpu/sleep/mix", total=len(suite.workloads))
    for workload in suite.workloads:
        with guarded(ctx, "workload", workload, "tasks_per_s", "tasks/s"):
            runs = drain_runs(ctx, setting, workload, suite.workload_count, 1, task)
            drain_row(ctx, "workload", workload, setting, runs)


def bench_scaling(ctx: Context) -> None:
    adapter, suite = ctx.adapter, ctx.suite
    points = [("processes", p, adapter.scaling_setting(p, adapter.default_concurrency))
              for p in suite.scaling_processes]  # fmt: skip
    points += [("concurrency", c, adapter.scaling_setting(1, c)) for c in suite.scaling_concurrency]
    if not points:
        return
    task = ctx.progress.add_task(f"{ctx.system} scaling", total=len(points) * suite.drain_reps)
    for axis, value, setting in points:
        case = f"{axis}={value}"
        with guarded(ctx, "scaling", case, "tasks_per_s", "tasks/s"):
            runs = drain_runs(ctx, setting, "noop", suite.drain_count, suite.drain_reps, task)
            drain_row(ctx, "scaling", case, setting, runs)


# ---------------------------------------------------------------------------
# Latency


def producer_jobs(rate: float, count: int) -> list[Job]:
    k = min(MAX_PRODUCERS, max(1, math.ceil(rate / RATE_PER_PRODUCER)))
    return [Job("openloop", "noop", count, rate_per_s=rate, offset=i, stride=k, warmup=WARMUP_TASKS) for i in range(k)]


def settle(ctx: Context, expected: int, workers: Sequence[procs.Launched]) -> None:
    """Wait for the producers' warm-up tasks to have run (so the workers are up), then forget them."""
    if wait_done(ctx, expected, STARTUP_S, workers) < expected:
        raise RunFailed(f"the workers did not run the warm-up tasks within {STARTUP_S:.0f}s")
    time.sleep(0.5)
    recorder.reset(ctx.client)


def latency_once(ctx: Context, setting: WorkerSetting, rate: float) -> dict[str, Any]:
    ctx.client.flushall()
    count = ctx.suite.latency_count(rate)
    with measured_load() as load, running_workers(ctx, setting, "latency") as workers:
        jobs = producer_jobs(rate, count)
        warmup = sum(job.warmup for job in jobs)
        t0, reports = run_producers(ctx.python, ctx.system, ctx.url, jobs, timeout_s=300,
                                    before_start=lambda: settle(ctx, warmup, workers))  # fmt: skip
        wait_done(ctx, count, max(0.0, t0 + count / rate + ctx.suite.latency_grace_s - time.time()), workers)
        time.sleep(recorder.FLUSH_S * 3)
    samples = recorder.samples(ctx.client)
    unfinished = count - len(samples)
    lateness = [r["lateness_ms"]["p99"] for r in reports if r["lateness_ms"]["p99"] is not None]
    return {
        "rate_per_s": rate,
        "count": count,
        "send_errors": sum(r["errors"] for r in reports),
        "first_send_error": next((r["first_error"] for r in reports if r["first_error"]), ""),
        "sender_lateness_p99_ms": max(lateness) if lateness else None,
        "to_start_ms": summarize_ms([s.to_start_ms for s in samples], unfinished),
        "to_finish_ms": summarize_ms([s.to_finish_ms for s in samples], unfinished),
        "load": load.as_list(),
        "to_start_cdf": LogHistogram.of([s.to_start_ms for s in samples], lowest=0.01, precision=0.02).cdf(),
    }


def latency_rows(ctx: Context, setting: WorkerSetting, result: dict[str, Any]) -> None:
    case = f"{result['rate_per_s']:g}/s"
    unfinished = result["to_start_ms"]["unfinished"]
    note = f"{unfinished} of {result['count']} unfinished" if unfinished else ""
    loads = load_fields([Load(*result["load"])]) if "load" in result else {}
    if result["send_errors"]:
        note += f"; {result['send_errors']} send errors ({result['first_send_error'][:200]})"
    for measure in ("to_start_ms", "to_finish_ms"):
        for q in ("p50", "p90", "p99", "p999", "max"):
            metric = f"{measure.removesuffix('_ms')}_{q}"
            ctx.add("latency", case, metric, result[measure][q], "ms", setting=setting.label, note=note, **loads)
    ctx.add("latency", case, "sender_lateness_p99", result["sender_lateness_p99_ms"], "ms", setting=setting.label,
            **loads)  # fmt: skip


def bench_latency(ctx: Context, setting: WorkerSetting) -> None:
    task = ctx.progress.add_task(f"{ctx.system} latency", total=len(ctx.suite.rates))
    for rate in ctx.suite.rates:
        with guarded(ctx, "latency", f"{rate:g}/s", "to_start_p99", "ms"):
            result = latency_once(ctx, setting, rate)
            ctx.details.setdefault("latency", []).append(result)
            latency_rows(ctx, setting, result)
        ctx.progress.advance(task)


# ---------------------------------------------------------------------------
# Main


EXPERIMENTS = ("enqueue", "drain", "workload", "latency", "scaling")


def run_system(ctx: Context, experiments: Sequence[str]) -> None:
    if "enqueue" in experiments:
        bench_enqueue(ctx)
    best = default_setting(ctx.adapter)
    if "drain" in experiments:
        best = bench_drain(ctx)
    ctx.details["best_setting"] = best.label
    if "workload" in experiments:
        bench_workloads(ctx, best)
    if "latency" in experiments:
        bench_latency(ctx, best)
    if "scaling" in experiments:
        bench_scaling(ctx)


def system_info(ctx: Context) -> dict[str, Any]:
    adapter = ctx.adapter
    return {
        "version": version(adapter.distribution),
        "redis_py": redis.__version__,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "bulk_api": adapter.bulk_api,
        "producer_api": "sync" if adapter.sync_api else "async",
        "open_loop_api": "async" if adapter.async_api else "sync (thread pool)",
        "settings_tried": [
            p.label
            for p in grid.plan(adapter, ctx.suite.grid, ctx.suite.grid_processes(), ctx.suite.max_settings)
            if p.setting is not None
        ],
        "defaults": [adapter.default_one.label, adapter.default_two.label],
        "producer": adapter.producer_note,
        "worker_command_example": " ".join(adapter.worker_commands(default_setting(adapter), sys.executable)[0]),
        "adapter_doc": (getattr(sys.modules.get(type(adapter).__module__), "__doc__", None) or "").strip(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--suite", default="short", choices=sorted(SUITES))
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--logs", type=Path, default=None)
    parser.add_argument("--round", type=int, default=1, help="the round of the run (rotates the settings' order)")
    args = parser.parse_args(argv)
    os.environ[recorder.URL_ENV] = args.url
    from taskq_bench.systems import load_adapter

    document = run_to_document(args.system, args.url, SUITES[args.suite], args.experiments.split(","),
                               args.logs or args.out.parent / "logs", load_adapter, args.round)  # fmt: skip
    args.out.write_text(json.dumps(document, default=str))


def run_to_document(
    system: str,
    url: str,
    suite: Suite,
    experiments: Sequence[str],
    logs: Path,
    load: Callable[[str, str], Adapter],
    round_number: int = 1,
) -> dict[str, Any]:
    adapter = load(system, url)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    quiet = os.environ.get(PROGRESS_ENV) == "0"
    with Progress(*columns, transient=False, disable=quiet) as progress, redis.Redis.from_url(url) as client:
        ctx = Context(system, url, adapter, suite, logs, client, progress, round_number=round_number)
        info = system_info(ctx)
        run_system(ctx, experiments)
    rows = [asdict(row) for row in ctx.rows]
    return {"system": system, "info": info, "rows": rows, "errors": ctx.errors, "details": ctx.details}


if __name__ == "__main__":
    main()
