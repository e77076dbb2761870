"""What telemetry costs: the snapshot a dashboard polls, and what events and telemetry add
to the server and to drain throughput.

    python -m taskq_bench.telemetry                     # a private redis-server, default sizes
    python -m taskq_bench.telemetry --reps 7 --tasks 20000
    python -m taskq_bench.telemetry --only snapshot     # or scripts, or drain

* **snapshot**: 20 queues, each with tasks queued at all 10 priorities, 10 running, some
  scheduled and dead, histograms of 3 metrics x ~80 buckets and live window checkpoints;
  times ``TaskQueue.snapshot()`` of all 20 (one round trip once polled): 4 times a second,
  back to back, and busy-cold (every queue written to this second and its window figures
  recomputed, as the first snapshot in each second of busy queues does); the Redis time
  per queue of both kinds of script call, and the load average.
* **scripts**: Redis CPU per task (INFO cpu: CPU time, not wall time) of enqueue, claim and
  complete in batches of 50 (``enqueue_many``, then an in-process worker running 50 at a
  time), per telemetry mode. Public API only, as everywhere in the harness.
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
import os
import random
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

import taskq
from taskq.server import EmbeddedServer
from taskq.worker import Worker
from taskq_bench.commandstats import script_calls

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
    client_cpu_us_per_task: float = 0.0
    """CPU time of this process (the worker, its threads and the watcher) per task."""

    @property
    def cpu_us_per_task(self) -> float:
        """Client and server CPU per task: what bounds throughput when CPUs are busy."""
        return self.redis_cpu_us_per_task + self.client_cpu_us_per_task


def _flush(url: str) -> None:
    with redis.Redis.from_url(url) as r:
        r.flushdb()


def _redis_cpu_s(url: str) -> float:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _register_noop(tq: taskq.TaskQueue) -> None:
    @tq.task(queue="bench", name="noop")
    async def noop() -> None:
        return None


def _drain(tq: taskq.TaskQueue, url: str, total: int, concurrency: int) -> float:
    """Run one in-process worker on queue "bench" until ``total`` tasks succeeded; seconds taken."""
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

    return asyncio.run(drain())


def bench_drain(url: str, mode: str, tasks: int = 20_000, concurrency: int = 100) -> DrainRun:
    """Enqueue ``tasks`` no-op async tasks, then time one in-process worker draining them."""
    _flush(url)
    tq = taskq.TaskQueue(url, **DRAIN_MODES[mode])
    _register_noop(tq)
    requests = [{"name": "noop"} for _ in range(1000)]
    for _ in range(math.ceil(tasks / 1000)):
        tq.enqueue_many(requests)
    total = math.ceil(tasks / 1000) * 1000
    cpu_before, client_before = _redis_cpu_s(url), time.process_time()
    seconds = _drain(tq, url, total, concurrency)
    client = time.process_time() - client_before
    cpu = _redis_cpu_s(url) - cpu_before
    tq.close()
    return DrainRun(
        mode,
        total,
        round(seconds, 3),
        round(total / seconds),
        round(cpu / total * 1e6, 1),
        round(client / total * 1e6, 1),
    )


def bench_scripts(url: str, mode: str, tasks: int = 5000, batch: int = 50) -> float:
    """Redis CPU per task (microseconds) of a task's whole life through the public API:
    enqueued in batches of ``batch`` (``enqueue_many``), then claimed and completed by an
    in-process worker running ``batch`` at a time. INFO cpu counts Redis's CPU time, not wall
    time, so this is the server-side cost of telemetry, free of the client's and the worker's
    own time (the worker's heartbeats and wake-ups add a little)."""
    _flush(url)
    tq = taskq.TaskQueue(url, **DRAIN_MODES[mode])
    _register_noop(tq)
    total = math.ceil(tasks / batch) * batch
    cpu_before = _redis_cpu_s(url)
    for _ in range(total // batch):
        tq.enqueue_many([{"name": "noop"} for _ in range(batch)])
    _drain(tq, url, total, concurrency=batch)
    cpu = _redis_cpu_s(url) - cpu_before
    tq.close()
    return round(cpu / total * 1e6, 2)


#: Per seeded queue: tasks running (held by the seeding worker) and dead.
SEED_RUNNING, SEED_DEAD = 10, 2


class SeededQueues:
    """Queues as a dashboard would find them, made through the public API only: 10 priorities
    queued, ``SEED_RUNNING`` running (sync tasks that a background worker holds until
    :meth:`release`), 3 scheduled, ``SEED_DEAD`` dead, a spread-out lifetime histogram, and
    checkpoints written by real script calls. The holding worker heartbeats while it lives, as
    the workers of a real dashboard's queues do."""

    def __init__(self, tq: taskq.TaskQueue, names: list[str], rng_seed: int = 0) -> None:
        self.tq, self.names = tq, names
        self._held = threading.Event()

        @tq.task(name="seed.fail", max_retries=0)
        def fail() -> None:
            raise ValueError("x")

        @tq.task(name="seed.hold")
        def hold() -> None:
            self._held.wait(600)

        tq.enqueue_many([{"name": "seed.fail", "queue": q, "priority": 10} for q in names for _ in range(SEED_DEAD)])
        with tq.start_worker(queues=names, concurrency=SEED_DEAD * len(names)):
            self._wait(lambda q: q.dead == SEED_DEAD)
        tq.enqueue_many([{"name": "seed.hold", "queue": q} for q in names for _ in range(SEED_RUNNING)])
        slots = SEED_RUNNING * len(names)  # exactly the held tasks: the worker claims nothing else
        self._worker = tq.start_worker(queues=names, concurrency=slots, threads=slots)
        self._wait(lambda q: q.running == SEED_RUNNING)
        rng = random.Random(rng_seed)
        for name in names:
            self._seed_queued_and_histograms(name, rng)

    def _wait(self, done: Any, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(done(q) for q in self.tq.snapshot(self.names, running_limit=0).queues):
            if time.monotonic() > deadline:
                raise TimeoutError("seeding the queues took too long")
            time.sleep(0.05)

    def _seed_queued_and_histograms(self, queue: str, rng: random.Random) -> None:
        tq = self.tq
        tq.enqueue_many(
            [{"name": "job", "queue": queue, "priority": p, "force": True} for p in range(1, 11) for _ in range(25)]
        )
        tq.enqueue_many([{"name": "job", "queue": queue, "delay_s": 3600, "force": True} for _ in range(3)])
        k = tq.ops.queue_keys(queue)
        for key, centre in zip(k.histograms, (40, 55, 60), strict=True):  # wait, run, e2e: ~80 buckets each
            ops: list[Any] = []
            for b in range(centre - 40, centre + 40):
                ops += ["SET", "u48", f"#{b}", 1 + int(1000 * math.exp(-(((b - centre) / 12) ** 2)) * rng.random())]
            tq.redis.execute_command("BITFIELD", key, *ops)
        tq.enqueue("job", queue=queue, priority=5, force=True)  # a script call after the seeding: checkpoints hold it

    def release(self) -> None:
        """Let the held tasks finish and stop the worker that ran them."""
        self._held.set()
        self._worker.stop()


def _time_ms(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _figures(timings_ms: list[float]) -> dict[str, float]:
    ordered = sorted(timings_ms)
    return {
        "min_ms": round(ordered[0], 3),
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(ordered[int(0.9 * len(ordered))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def bench_snapshot(url: str, queues: int = 20, poll_s: float = 10.0, reps: int = 100) -> dict[str, Any]:
    """Time ``TaskQueue.snapshot()`` of ``queues`` seeded queues, three ways: polled 4 times a
    second for ``poll_s`` (what a dashboard does), back to back, and busy-cold: every queue
    written to just before, and the window figures recomputed (as the first snapshot in each
    second of busy queues does). Also the Redis-side time per queue (INFO commandstats) of a
    cached and of a recomputing snapshot script, the CPU time (client and server) of a
    back-to-back snapshot, and the load average around the run."""
    _flush(url)
    load_before = os.getloadavg()[0]
    tq = taskq.TaskQueue(url)
    names = [f"q{i:02d}" for i in range(queues)]
    seeded = SeededQueues(tq, names)
    try:
        return _time_snapshots(tq, url, names, poll_s, reps, load_before)
    finally:
        seeded.release()
        tq.close()


def _time_snapshots(
    tq: taskq.TaskQueue, url: str, names: list[str], poll_s: float, reps: int, load_before: float
) -> dict[str, Any]:
    time.sleep(1.1)  # a second later: a second checkpoint
    tq.enqueue_many([{"name": "job", "queue": name, "force": True} for name in names])
    snapshot = tq.snapshot(names)
    assert all(len(q.by_priority) == 10 and q.running == SEED_RUNNING for q in snapshot.queues)
    polled = []
    deadline = time.monotonic() + poll_s
    while time.monotonic() < deadline:
        polled.append(_time_ms(lambda: tq.snapshot(names)))
        time.sleep(0.25)
    cpu_before, redis_before = time.process_time(), _redis_cpu_s(url)
    back_to_back = [_time_ms(lambda: tq.snapshot(names)) for _ in range(reps)]
    client_cpu_ms = (time.process_time() - cpu_before) * 1000 / reps
    redis_cpu_ms = (_redis_cpu_s(url) - redis_before) * 1000 / reps
    caches = [tq.ops.queue_keys(name).windows for name in names]

    def touch() -> None:  # a write to every queue this second, and no cached window figures
        tq.enqueue_many([{"name": "job", "queue": name, "force": True} for name in names])
        tq.redis.delete(*caches)

    cold_timings = []
    for _ in range(reps // 2):
        touch()
        cold_timings.append(_time_ms(lambda: tq.snapshot(names)))
    warm_us = _snapshot_script_us(tq, names)
    cold_us = _snapshot_script_us(tq, names, before=touch)
    buckets = sum(int(tq.redis.strlen(key)) // 6 for key in tq.ops.queue_keys(names[0]).histograms)
    return {
        "queues": len(names),
        "priorities": 10,
        "histogram_buckets_per_queue": buckets,
        "polled_4_per_s": _figures(polled),
        "back_to_back": _figures(back_to_back),
        "busy_cold": _figures(cold_timings),
        # CPU time per back-to-back snapshot (client process, Redis server): what it costs
        # without waiting for a CPU, so less at the mercy of a loaded machine than wall time.
        "cpu_ms_per_snapshot": {"client": round(client_cpu_ms, 3), "redis": round(redis_cpu_ms, 3)},
        "redis_script_us_per_queue": warm_us,
        "redis_script_us_per_queue_cold": cold_us,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _snapshot_script_us(tq: taskq.TaskQueue, names: list[str], reps: int = 50, before: Any = None) -> float:
    """Redis-side time of one queue's snapshot script (INFO commandstats), microseconds;
    ``before`` runs (untimed) before each snapshot."""
    total_us, calls = 0.0, 0
    for _ in range(reps):
        if before is not None:
            before()
        tq.redis.config_resetstat()
        tq.snapshot(names)
        n, usec = script_calls(tq.redis.info("commandstats"))
        calls += n
        total_us += usec
    return round(total_us / max(1, calls), 1)


def summarize(runs: list[DrainRun]) -> dict[str, dict[str, float]]:
    """Median and best throughput per mode, and the cost of each against telemetry off."""
    out: dict[str, dict[str, float]] = {}
    for mode in DRAIN_MODES:
        mine = [r for r in runs if r.mode == mode]
        if mine:
            out[mode] = {
                "median_per_s": round(statistics.median(r.per_s for r in mine)),
                "best_per_s": max(r.per_s for r in mine),
                "median_redis_cpu_us_per_task": round(statistics.median(r.redis_cpu_us_per_task for r in mine), 1),
                "median_cpu_us_per_task": round(statistics.median(r.cpu_us_per_task for r in mine), 1),
            }
    base = out.get("telemetry off", {}).get("median_per_s")
    best = out.get("telemetry off", {}).get("best_per_s")
    cpu_off = out.get("telemetry off", {}).get("median_cpu_us_per_task")
    for figures in out.values():
        if base:
            figures["cost_vs_telemetry_off_pct"] = round(100 * (1 - figures["median_per_s"] / base), 1)
        if best:  # the best runs were the least disturbed by other work on a shared machine
            figures["best_cost_vs_telemetry_off_pct"] = round(100 * (1 - figures["best_per_s"] / best), 1)
        if cpu_off:  # throughput per CPU-second, client and server: steadier on a loaded machine
            figures["cpu_cost_vs_telemetry_off_pct"] = round(100 * (1 - cpu_off / figures["median_cpu_us_per_task"]), 1)
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
                    print(f"  rep {rep + 1} {mode:<20} {run.per_s:>7}/s  redis {run.redis_cpu_us_per_task} us/task"
                          f"  client {run.client_cpu_us_per_task} us/task", flush=True)  # fmt: skip
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
