"""Quick figures anyone can rerun: enqueue rates, drain throughput, enqueue→start latency.

    python -m benchmarks.quick                 # a private redis-server, default sizes
    python -m benchmarks.quick --url redis://… # an existing server (its taskq keys are flushed!)

Workers are real processes (``taskq worker benchmarks.apps:tq``). Latency is measured
open-loop: task i is due to be sent at t0 + i/rate whatever the system does, and its latency
runs from that intended time to the moment the task starts (no coordinated omission).
Results are printed and written to bench-results/quick-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Results:
    machine: dict[str, Any]
    settings: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)


def machine_info() -> dict[str, Any]:
    import taskq

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "taskq": taskq.__version__,
        "redis_py": redis.__version__,
    }


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as r:
        r.flushdb()


def start_workers(url: str, processes: int, concurrency: int, events: bool) -> list[subprocess.Popen[bytes]]:
    env = dict(os.environ, TASKQ_REDIS_URL=url, TASKQ_BENCH_EVENTS="1" if events else "0")
    argv = [sys.executable, "-m", "taskq.cli", "worker", "benchmarks.apps:tq", "--queues", "bench",
            "--concurrency", str(concurrency), "--log-level", "warning"]  # fmt: skip
    return [subprocess.Popen(argv, env=env, cwd=ROOT) for _ in range(processes)]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(20)
        except subprocess.TimeoutExpired:
            w.kill()


def wait_registered(tq: Any, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while len([w for w in tq.workers() if not w.get("gone")]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not start")
        time.sleep(0.05)


def bench_enqueue(tq: Any, single_n: int, bulk_n: int) -> dict[str, float]:
    from benchmarks.apps import noop

    t0 = time.perf_counter()
    for _ in range(single_n):
        noop.enqueue()
    single = single_n / (time.perf_counter() - t0)
    requests = [{"name": noop.name} for _ in range(1000)]
    t0 = time.perf_counter()
    for _ in range(bulk_n // 1000):
        tq.enqueue_many(requests)
    bulk = bulk_n / (time.perf_counter() - t0)
    return {"single_per_s": round(single), "bulk_per_s": round(bulk)}


def bench_drain(tq: Any, url: str, n: int, processes: int, concurrency: int, events: bool) -> float:
    from benchmarks.apps import noop

    flush(url)
    requests = [{"name": noop.name} for _ in range(1000)]
    for _ in range(n // 1000):
        tq.enqueue_many(requests)
    workers = start_workers(url, processes, concurrency, events)
    try:
        while tq.stats("bench").counters.get("succeeded", 0) < n:
            time.sleep(0.01)
    finally:
        stop_workers(workers)
    return n / busy_seconds(url)


def busy_seconds(url: str) -> float:
    """From the first task's start to the last one's finish, by the server's clock (so the
    workers' start-up time does not count)."""
    first, last = float("inf"), 0.0
    with redis.Redis.from_url(url, decode_responses=True) as r:
        keys = list(r.scan_iter(match="taskq:{bench}:t:*", count=1000))
        for start in range(0, len(keys), 1000):
            pipe = r.pipeline(transaction=False)
            for key in keys[start : start + 1000]:
                pipe.hmget(key, "started_ms", "finished_ms")
            for started, finished in pipe.execute():
                first = min(first, float(started))
                last = max(last, float(finished))
    return max(0.001, (last - first) / 1000)


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999), "max": round(ordered[-1], 3)}


def bench_latency(tq: Any, url: str, rate: float, seconds: float, processes: int, concurrency: int) -> dict[str, Any]:
    from benchmarks.apps import stamp

    flush(url)
    workers = start_workers(url, processes, concurrency, events=True)
    try:
        wait_registered(tq, processes)
        total = int(rate * seconds)
        intended: list[float] = []
        handles: list[Any] = []
        t0 = time.time() + 0.2
        sent = 0
        while sent < total:
            now = time.time()
            due = min(total, int((now - t0) * rate) + 1) if now >= t0 else 0
            if due > sent:
                batch = [{"name": stamp.name} for _ in range(due - sent)]
                handles += tq.enqueue_many(batch)
                intended += [t0 + i / rate for i in range(sent, due)]
                sent = due
            else:
                time.sleep(min(0.0005, max(0.0, t0 + sent / rate - now)))
        started = [h.result(timeout_s=60) for h in handles]
        latencies = [(s - i) * 1000 for s, i in zip(started, intended, strict=True)]
        return {"rate_per_s": rate, "tasks": total, **percentiles(latencies)}
    finally:
        stop_workers(workers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="Redis URL (default: a private redis-server started here)")
    parser.add_argument("--drain-n", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency-s", type=float, default=5.0)
    parser.add_argument("--rates", default="200,2000")
    parser.add_argument("--repeat", type=int, default=3, help="drain runs per setting; the median is kept")
    args = parser.parse_args(argv)

    from taskq.server import EmbeddedServer

    server = None if args.url else EmbeddedServer(kind="redis-server").start()
    url = args.url or server.url  # type: ignore[union-attr]
    os.environ["TASKQ_REDIS_URL"] = url
    import benchmarks.apps as apps

    tq = apps.tq
    results = Results(machine_info(), vars(args))
    try:
        flush(url)
        results.figures["enqueue"] = bench_enqueue(tq, 5000, 50_000)
        print("enqueue", results.figures["enqueue"], flush=True)
        drains: dict[str, Any] = {}
        for label, processes, events in (("1 process", 1, True), ("2 processes", 2, True),
                                         ("1 process, events off", 1, False)):  # fmt: skip
            runs = [bench_drain(tq, url, args.drain_n, processes, args.concurrency, events)
                    for _ in range(args.repeat)]  # fmt: skip
            drains[label] = {"median_per_s": round(statistics.median(runs)), "runs": [round(r) for r in runs]}
            print("drain", label, drains[label], flush=True)
        results.figures["drain"] = drains
        latency = []
        for rate in (float(r) for r in args.rates.split(",")):
            latency.append(bench_latency(tq, url, rate, args.latency_s, 2, 50))
            print("latency enqueue→start (ms)", latency[-1], flush=True)
        results.figures["latency_enqueue_to_start_ms"] = latency
    finally:
        tq.close()
        if server is not None:
            server.stop()
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    path = out / f"quick-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(asdict(results), indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
