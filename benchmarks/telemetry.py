"""What telemetry costs: the snapshot a dashboard polls, and what events and telemetry add
to the server and to drain throughput.

    python -m benchmarks.telemetry                     # a private redis-server, default sizes
    python -m benchmarks.telemetry --reps 7 --tasks 20000
    python -m benchmarks.telemetry --only snapshot     # or scripts, or drain

* **snapshot**: 20 queues, each with tasks queued at all 10 priorities, 10 running, some
  scheduled and dead, histograms of 3 metrics x ~80 buckets and live window checkpoints;
  times ``TaskQueue.snapshot()`` of all 20 (two round trips): polled 4 times a second,
  back to back, and cold (window figures recomputed each time, as the first snapshot of
  every second does).
* **scripts**: Redis CPU per task (INFO cpu: CPU time, not wall time) of enqueue, claim and
  complete driven straight through the scripts in batches of 50, per telemetry mode.
* **drain**: ``--tasks`` no-op async tasks enqueued up front, then drained by one in-process
  :class:`taskq.worker.Worker` (concurrency 100); throughput = tasks / time to the last
  success.

Modes: events on (the default), events sampled 1 in 10, events off, and telemetry off
(no events, histograms or windows; counters and queued depth stay). They are interleaved
and repeated, and medians reported, because a shared machine is noisy. Every figure is
printed; ``--json PATH`` also writes them. Importable: notebooks call
:func:`bench_snapshot`, :func:`bench_scripts` and :func:`bench_drain` directly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

import taskq
from taskq.server import EmbeddedServer
from taskq.worker import Worker

#: Drain modes: name -> TaskQueue settings.
DRAIN_MODES: dict[str, dict[str, Any]] = {
    "events on": {"events": True, "telemetry": True},
    "events sampled 1/10": {"events": True, "telemetry": True, "events_sample": 10},
    "events off": {"events": False, "telemetry": True},
    "telemetry off": {"events": False, "telemetry": False},
}


@dataclass
class DrainRun:
    mode: str
    tasks: int
    seconds: float
    per_s: float
    redis_cpu_us_per_task: float


def _flush(url: str) -> None:
    with redis.Redis.from_url(url) as r:
        r.flushdb()


def _redis_cpu_s(url: str) -> float:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def bench_drain(url: str, mode: str, tasks: int = 20_000, concurrency: int = 100) -> DrainRun:
    """Enqueue ``tasks`` no-op async tasks, then time one in-process worker draining them."""
    _flush(url)
    tq = taskq.TaskQueue(url, **DRAIN_MODES[mode])

    @tq.task(queue="bench", name="noop")
    async def noop() -> None:
        return None

    requests = [{"name": "noop"} for _ in range(1000)]
    for _ in range(math.ceil(tasks / 1000)):
        tq.enqueue_many(requests)
    total = math.ceil(tasks / 1000) * 1000
    worker = Worker(tq, queues=["bench"], concurrency=concurrency)
    stats_key = tq.ops.queue_keys("bench").stats

    async def drain() -> float:
        watcher = aioredis.Redis.from_url(url, decode_responses=True)
        running = asyncio.create_task(worker.run())
        started = time.perf_counter()
        while int(await watcher.hget(stats_key, "succeeded") or 0) < total:
            if running.done():
                running.result()
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        worker.request_stop(0)
        await running
        await watcher.aclose()
        return elapsed

    cpu_before = _redis_cpu_s(url)
    seconds = asyncio.run(drain())
    cpu = _redis_cpu_s(url) - cpu_before
    tq.close()
    return DrainRun(mode, total, round(seconds, 3), round(total / seconds), round(cpu / total * 1e6, 1))


def bench_scripts(url: str, mode: str, tasks: int = 5000, batch: int = 50) -> float:
    """Redis CPU per task (microseconds) of enqueue-claim-complete driven straight through the
    scripts, ``batch`` tasks per call: the server-side cost of telemetry, free of the
    worker's own time (INFO cpu counts Redis's CPU time, not wall time)."""
    _flush(url)
    tq = taskq.TaskQueue(url, **DRAIN_MODES[mode])
    requests = [{"name": "noop", "queue": "bench"} for _ in range(batch)]
    cpu_before = _redis_cpu_s(url)
    done = 0
    while done < tasks:
        tq.enqueue_many(requests)
        claimed = tq._exec.run(tq.ops.claim("bench", batch, 60_000, "w"))
        tq._exec.run(tq.ops.finish([tq.ops.complete_command(c, "null") for c in claimed]))
        done += len(claimed)
    cpu = _redis_cpu_s(url) - cpu_before
    tq.close()
    return round(cpu / done * 1e6, 2)


def seed_queue(tq: taskq.TaskQueue, queue: str, rng_seed: int) -> None:
    """A queue as a dashboard would find it: 10 priorities queued, 10 running, 3 scheduled,
    2 dead, a spread-out lifetime histogram, and checkpoints written by real script calls."""
    import random

    rng = random.Random(rng_seed)
    tq.enqueue_many([{"name": "job", "queue": queue, "priority": p} for p in range(1, 11) for _ in range(25)])
    tq.enqueue_many([{"name": "job", "queue": queue, "delay_s": 3600} for _ in range(3)])
    claimed = tq._exec.run(tq.ops.claim(queue, 12, 600_000, f"worker-{rng_seed}"))
    for task in claimed[:2]:
        tq._exec.run(tq.ops.finish([tq.ops.fail_command(task, "ValueError", "x", "", -1)]))
    k = tq.ops.queue_keys(queue)
    for key, centre in zip(k.histograms, (40, 55, 60), strict=True):  # wait, run, e2e: ~80 buckets each
        ops: list[Any] = []
        for b in range(centre - 40, centre + 40):
            ops += ["SET", "u48", f"#{b}", 1 + int(1000 * math.exp(-(((b - centre) / 12) ** 2)) * rng.random())]
        tq.redis.execute_command("BITFIELD", key, *ops)
    tq.enqueue("job", queue=queue, priority=5)  # a script call after the seeding: checkpoints hold it


def _time_ms(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _figures(timings_ms: list[float]) -> dict[str, float]:
    ordered = sorted(timings_ms)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[int(0.9 * len(ordered))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def bench_snapshot(url: str, queues: int = 20, poll_s: float = 10.0, reps: int = 100) -> dict[str, Any]:
    """Time ``TaskQueue.snapshot()`` of ``queues`` seeded queues, three ways: polled 4 times a
    second for ``poll_s`` (what a dashboard does), back to back, and cold (the window figures
    recomputed every time, as the first snapshot in each second does)."""
    _flush(url)
    tq = taskq.TaskQueue(url)
    names = [f"q{i:02d}" for i in range(queues)]
    for i, name in enumerate(names):
        seed_queue(tq, name, i)
    time.sleep(1.1)  # a second later: a second checkpoint
    for name in names:
        tq.enqueue("job", queue=name)
    snapshot = tq.snapshot(names)
    assert all(len(q.by_priority) == 10 and q.running == 10 for q in snapshot.queues)
    polled = []
    deadline = time.monotonic() + poll_s
    while time.monotonic() < deadline:
        polled.append(_time_ms(lambda: tq.snapshot(names)))
        time.sleep(0.25)
    back_to_back = [_time_ms(lambda: tq.snapshot(names)) for _ in range(reps)]
    caches = [tq.ops.queue_keys(name).windows for name in names]

    def cold() -> None:
        tq.redis.delete(*caches)
        tq.snapshot(names)

    cold_timings = [_time_ms(cold) - _time_ms(lambda: tq.redis.delete(*caches)) for _ in range(reps // 2)]
    server_us = _snapshot_script_us(tq, names)
    buckets = sum(int(tq.redis.strlen(key)) // 6 for key in tq.ops.queue_keys(names[0]).histograms)
    tq.close()
    return {
        "queues": queues,
        "priorities": 10,
        "histogram_buckets_per_queue": buckets,
        "polled_4_per_s": _figures(polled),
        "back_to_back": _figures(back_to_back),
        "cold": _figures(cold_timings),
        "redis_script_us_per_queue": server_us,
    }


def _snapshot_script_us(tq: taskq.TaskQueue, names: list[str], reps: int = 50) -> float:
    """Redis-side time of one queue's snapshot script (INFO commandstats), microseconds."""
    tq.redis.config_resetstat()
    for _ in range(reps):
        tq.snapshot(names)
    stats = tq.redis.info("commandstats").get("cmdstat_evalsha", {})
    calls = int(stats.get("calls", 0)) or 1
    return round(float(stats.get("usec", 0)) / calls, 1)


def summarize(runs: list[DrainRun]) -> dict[str, dict[str, float]]:
    """Median and best throughput per mode, and the median cost against telemetry off."""
    out: dict[str, dict[str, float]] = {}
    for mode in DRAIN_MODES:
        mine = [r for r in runs if r.mode == mode]
        if mine:
            out[mode] = {
                "median_per_s": round(statistics.median(r.per_s for r in mine)),
                "best_per_s": max(r.per_s for r in mine),
                "median_redis_cpu_us_per_task": round(statistics.median(r.redis_cpu_us_per_task for r in mine), 1),
            }
    base = out.get("telemetry off", {}).get("median_per_s")
    for figures in out.values():
        if base:
            figures["cost_vs_telemetry_off_pct"] = round(100 * (1 - figures["median_per_s"] / base), 1)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="an existing server (its keys are flushed!); default: a private redis-server")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each drain mode (interleaved)")
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks per drain")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--only", choices=("snapshot", "scripts", "drain"), help="run one benchmark")
    parser.add_argument("--json", dest="json_path", help="also write the figures here")
    args = parser.parse_args(argv)
    server = None if args.url else EmbeddedServer(kind="redis-server").start()
    url = args.url or (server.url if server else "")
    results: dict[str, Any] = {}
    try:
        if args.only in (None, "snapshot"):
            results["snapshot"] = bench_snapshot(url)
            print("snapshot of 20 queues x 10 priorities:", json.dumps(results["snapshot"]), flush=True)
        if args.only in (None, "scripts"):
            costs: dict[str, list[float]] = {mode: [] for mode in DRAIN_MODES}
            for _ in range(args.reps * 3):
                for mode in DRAIN_MODES:
                    costs[mode].append(bench_scripts(url, mode))
            results["scripts"] = {
                mode: {"min_us_per_task": min(v), "median_us_per_task": round(statistics.median(v), 2)}
                for mode, v in costs.items()
            }
            for mode, figures in results["scripts"].items():
                print(f"redis cpu per task, {mode:<20} {json.dumps(figures)}", flush=True)
        if args.only in (None, "drain"):
            runs: list[DrainRun] = []
            for rep in range(args.reps):
                for mode in DRAIN_MODES:
                    run = bench_drain(url, mode, args.tasks, args.concurrency)
                    runs.append(run)
                    print(f"  rep {rep + 1} {mode:<20} {run.per_s:>7}/s  redis {run.redis_cpu_us_per_task} us/task",
                          flush=True)  # fmt: skip
            results["drain_runs"] = [asdict(r) for r in runs]
            results["drain"] = summarize(runs)
            for mode, figures in results["drain"].items():
                print(f"{mode:<20} {json.dumps(figures)}")
    finally:
        if server is not None:
            server.stop()
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
