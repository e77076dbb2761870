"""``make bignum``: taskq at big numbers (issue 17), on a private redis-server.

1. **One queue, a million tasks.** Bulk-enqueues (``enqueue_many``, 10,000 a call) up to
   1,000, 100,000 and 1,000,000 queued tasks; at each depth it measures the claim of one task
   (the claim script, as a worker sends it) ``--claims`` times: the client's round trip
   P50/P99 and the server's own time per script call (INFO commandstats, reset before), and
   Redis memory per queued task (used_memory growth / tasks). A claim is a ZPOPMIN on the
   queue's sorted set, O(log N): the time may grow with log N, never with N.
2. **10,000 queues.** One task in each of ``--queues`` queues, then the time of
   ``tq.snapshot()`` (every queue) and of ``taskq stats`` (the CLI, a process of its own,
   rendering every queue) and ``taskq stats --json``.

(The 1 MiB payload at the limit is a test: tests/reliability/test_limits.py.)

Usage::

    python benchmarks/bignum.py                       # the whole run: about 3 GB of RAM, a few minutes
    python benchmarks/bignum.py --depths 1000,100000 --queues 1000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
from taskq_bench.commandstats import script_calls

import taskq
from taskq.server import EmbeddedServer
from taskq.telemetry.histogram import nearest_rank_ms

QUEUE = "big"
BATCH = 10_000


@dataclass
class DepthFigures:
    depth: int
    enqueue_per_s: float
    bytes_per_queued_task: float
    claim_p50_ms: float
    claim_p99_ms: float
    claim_server_us: float
    """Redis's own time per claim script call (INFO commandstats usec_per_call of FCALL, or of
    EVALSHA where the server has no functions: taskq.functions)."""


@dataclass
class QueuesFigures:
    queues: int
    enqueue_s: float
    snapshot_s: list[float]
    stats_cli_s: float
    stats_json_cli_s: float
    used_memory_bytes: int


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def script_usec_per_call(r: redis.Redis) -> float:
    calls, usec = script_calls(r.info("commandstats"))
    return usec / max(1, calls)


def fill(tq: taskq.TaskQueue, queue: str, count: int, start: int) -> None:
    for at in range(start, start + count, BATCH):
        n = min(BATCH, start + count - at)
        tq.enqueue_many([{"name": "noop", "args": [i], "queue": queue, "force": True} for i in range(at, at + n)])


def measure_depth(tq: taskq.TaskQueue, r: redis.Redis, depth: int, have: int, claims: int) -> DepthFigures:
    before = used_memory(r)
    started = time.perf_counter()
    fill(tq, QUEUE, depth - have, have)
    enqueue_s = time.perf_counter() - started
    per_task = (used_memory(r) - before) / max(1, depth - have)
    r.config_resetstat()
    claims = min(claims, depth // 2)  # the depth stays within a factor of 2 of what it is named for
    claim = tq.ops.claim(QUEUE, 1, 600_000, "bignum")
    times_ms: list[float] = []
    for _ in range(claims):
        t0 = time.perf_counter()
        got = tq._exec.run(claim)
        times_ms.append((time.perf_counter() - t0) * 1000)
        assert len(got) == 1
    server_us = script_usec_per_call(r)
    fill(tq, QUEUE, claims, depth)  # put the depth back (the claimed ones stay in running)
    return DepthFigures(
        depth=depth,
        enqueue_per_s=round((depth - have) / enqueue_s, 0) if depth > have else 0.0,
        bytes_per_queued_task=round(per_task, 1),
        claim_p50_ms=round(nearest_rank_ms(times_ms, 500), 3),
        claim_p99_ms=round(nearest_rank_ms(times_ms, 990), 3),
        claim_server_us=server_us,
    )


def cli_seconds(url: str, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "taskq.cli", "--url", url, "stats", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "120"},
    )
    return round(time.perf_counter() - started, 2)


def measure_queues(tq: taskq.TaskQueue, r: redis.Redis, n: int, url: str) -> QueuesFigures:
    started = time.perf_counter()
    for at in range(0, n, 1000):
        tq.enqueue_many([{"name": "noop", "queue": f"q{i:05d}", "force": True} for i in range(at, min(n, at + 1000))])
    enqueue_s = time.perf_counter() - started
    snapshot_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        snap = tq.snapshot()
        snapshot_s.append(round(time.perf_counter() - t0, 3))
        assert len(snap.queues) >= n
    return QueuesFigures(
        queues=n,
        enqueue_s=round(enqueue_s, 2),
        snapshot_s=snapshot_s,
        stats_cli_s=cli_seconds(url),
        stats_json_cli_s=cli_seconds(url, "--json"),
        used_memory_bytes=used_memory(r),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--depths", default="1000,100000,1000000", help="queue depths to measure the claim at")
    parser.add_argument("--claims", type=int, default=2000, help="claims timed at each depth (at most half of it)")
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--json", default=None, help="write the figures here too")
    args = parser.parse_args(argv)
    depths = sorted(int(d) for d in args.depths.split(","))
    out: dict[str, Any] = {"depths": [], "queues": None}
    server = EmbeddedServer(kind="redis-server").start()
    try:
        with taskq.TaskQueue(server.url, embedded=False) as tq, redis.Redis.from_url(server.url) as r:
            have = 0
            for depth in depths:
                figures = measure_depth(tq, r, depth, have, args.claims)
                have = depth
                out["depths"].append(asdict(figures))
                print(
                    f"depth {depth:>9,}: enqueue {figures.enqueue_per_s:>8,.0f}/s, "
                    f"{figures.bytes_per_queued_task:6.1f} bytes per queued task; claim of one: "
                    f"P50 {figures.claim_p50_ms:.3f} ms, P99 {figures.claim_p99_ms:.3f} ms round trip, "
                    f"{figures.claim_server_us:.1f} us in Redis",
                    flush=True,
                )
            r.flushall()
            if args.queues:
                q = measure_queues(tq, r, args.queues, server.url)
                out["queues"] = asdict(q)
                print(
                    f"{q.queues:,} queues (one task each, enqueued in {q.enqueue_s} s): tq.snapshot() "
                    f"{', '.join(f'{s:.2f}' for s in q.snapshot_s)} s; taskq stats {q.stats_cli_s} s, "
                    f"taskq stats --json {q.stats_json_cli_s} s; Redis {q.used_memory_bytes / 2**20:.1f} MiB",
                    flush=True,
                )
    finally:
        server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
