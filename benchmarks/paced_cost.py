"""CPU per task of each process when tasks come at a steady rate (issue 14): the producer, one
``taskq worker`` at its defaults and redis-server, beside the enqueue→start latency.

Why: the drain figures are CPU per task with every process busy; at 200 tasks/s each process
sleeps between tasks, and on a VM a process that slept pays for its wake-up and its cold caches.
Those costs are on the latency path, and a drain never shows them.

For each ``--rates`` entry and each of ``--rounds`` rounds (the rates' order rotated), a fresh
redis-server on a free port and one worker of the benchmark app (``taskq_bench.systems.taskq``,
no-op tasks, defaults: hand-off, telemetry and events on) run; an ``AsyncTaskQueue`` producer
sends ``--count`` tasks at the rate (each at its due time, one after another: an open loop while
the sends keep up), then waits for the last to finish. Per task: each process's CPU time
(``/proc/<pid>/stat``: user + system), Redis's ``INFO commandstats`` (calls and µs of the
costliest commands; they include the benchmark recorder's flushes, the ``EXEC`` every 20 ms),
and the enqueue→start P50 and P99 the tasks stamped. Rate 0 sends back to
back (one at a time), the busy case to set against. /proc counts CPU in clock ticks (10 ms), so
a figure per task is exact to 10 ms / ``--count`` (5 µs at the default 2,000).

    .venv/bin/python benchmarks/paced_cost.py [--rates 0,200,1000] [--count 2000] [--rounds 3]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from taskq_bench import outside, private_redis, procs, recorder
from taskq_bench.fairness import rotated
from taskq_bench.stats import summarize_ms
from taskq_bench.systems.base import QUEUE

import taskq
from taskq.server import free_port

HERE = Path(__file__).resolve().parent
TASK = "taskq_bench.systems.taskq.noop"
TOP_COMMANDS = 6


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (taskq_bench.outside reads the file)."""
    proc = outside.parse_stat(Path(f"/proc/{pid}/stat").read_text())
    if proc is None:
        raise RuntimeError(f"/proc/{pid}/stat: unreadable")
    return proc.own / outside.TICKS_PER_S


async def produce(url: str, rate: float, count: int, r: redis.Redis, pids: dict[str, int]) -> dict[str, float]:
    """Send ``count`` tasks at ``rate`` (0: back to back); CPU per task of each process (µs)."""
    async with taskq.AsyncTaskQueue(url) as tq:
        for _ in range(20):  # warm: connections, the library, the worker's registration
            await tq.enqueue(TASK, [0.0], queue=QUEUE, force=True)
        deadline = time.monotonic() + 30
        while recorder.done_count(r) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        recorder.reset(r)
        r.config_resetstat()
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        mine = time.process_time()
        t0 = time.time() + 0.05
        for i in range(count):
            if rate:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.time()))
            intended = t0 + i / rate if rate else time.time()
            await tq.enqueue(TASK, [intended], queue=QUEUE, force=True)
        produced = time.process_time() - mine
        deadline = time.monotonic() + 60
        while recorder.done_count(r) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        after = {name: cpu_s(pid) for name, pid in pids.items()}
    per_task = {name: (after[name] - before[name]) / count * 1e6 for name in pids}
    per_task["producer"] = produced / count * 1e6
    return per_task


def one(rate: float, count: int, workdir: Path) -> dict[str, Any]:
    port = free_port()
    server = private_redis.start(port)
    url = f"redis://127.0.0.1:{port}/0"
    env = dict(os.environ, TASKQ_REDIS_URL=url, **{recorder.URL_ENV: url},
               PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))  # fmt: skip
    taskq_cli = str(Path(sys.executable).parent / "taskq")
    argv = [taskq_cli, "worker", "taskq_bench.systems.taskq:tq", "--queues", QUEUE, "--log-level", "warning"]
    worker = procs.launch(argv, env, HERE.parent, workdir / f"worker-{port}.log")
    try:
        r = redis.Redis(port=port)
        per_task = asyncio.run(produce(url, rate, count, r, {"worker": worker.proc.pid, "redis": server.pid}))
        procs.check_alive([worker])
        stats: dict[str, Any] = r.info("commandstats")
        samples = recorder.samples(r)
    finally:
        procs.stop([worker])
        server.terminate()
        server.wait(timeout=30)
    top = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:TOP_COMMANDS]
    commands = {k.removeprefix("cmdstat_"): {"calls": v["calls"] / count, "usec": v["usec"] / count} for k, v in top}
    # a task not done counts as later than every done one: its quantile is unknown (None)
    latency = summarize_ms([s.to_start_ms for s in samples], unfinished=max(0, count - len(samples)))
    return {
        "cpu_us": per_task,
        "commands": commands,
        "done": len(samples),
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
    }


def run(rates: Sequence[float], count: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {str(rate): [] for rate in rates}
    with tempfile.TemporaryDirectory(prefix="taskq-paced-") as tmp:
        for n in range(rounds):
            for rate in rotated(rates, n + 1):
                out[str(rate)].append(one(rate, count, Path(tmp)))
    return out


def _median(rows: list[dict[str, Any]], *path: str) -> float:
    """The median over rounds of ``row[path[0]][path[1]]...`` (rounds without it left out)."""
    values = []
    for row in rows:
        value: Any = row
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if value is not None:
            values.append(float(value))
    return statistics.median(values) if values else float("nan")


HEADER = (
    "| tasks/s | producer µs | worker µs | redis-server µs | P50 / P99 enqueue→start ms "
    "| costliest commands, µs per task |\n|---|---:|---:|---:|---|---|"
)


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [HEADER]
    for rate, rows in results.items():
        cpu = " | ".join(f"{_median(rows, 'cpu_us', p):.0f}" for p in ("producer", "worker", "redis"))
        latency = f"{_median(rows, 'p50_ms'):.2f} / {_median(rows, 'p99_ms'):.2f}"
        commands = ", ".join(f"{c} {_median(rows, 'commands', c, 'usec'):.1f}" for c in rows[0]["commands"])
        label = "back to back" if float(rate) == 0 else f"{float(rate):,.0f}"
        lines.append(f"| {label} | {cpu} | {latency} | {commands} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rates", default="0,200,1000", help="tasks/s, comma-separated (0: back to back)")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    rates = [float(x) for x in args.rates.split(",") if x.strip()]
    load = os.getloadavg()
    results = run(rates, args.count, args.rounds)
    after = os.getloadavg()
    print(
        f"{args.count} tasks x {args.rounds} rounds per rate; load average before {load[0]:.2f}, after {after[0]:.2f}"
    )
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"count": args.count, "rounds": args.rounds, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
