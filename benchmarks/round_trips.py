"""The latency floor of each way a worker can learn of a task, on this machine (issue 14).

    .venv/bin/python benchmarks/round_trips.py [--rate 200] [--count 1000] [--rounds 3] [--json out.json]

Starts its own redis-server on a free port. No task queue runs here: plain ``redis.asyncio``
clients, a producer in this process on the benchmarks' open-loop schedule
(:mod:`taskq_bench.openloop`) and one consumer process, so each figure is the cost of the
design's network hops and nothing else. Each message carries its intended send time; the
consumer records ``now - intended`` when it holds the message. Designs, rotated each round:

* ``blpop``: ``RPUSH`` → the consumer's ``BLPOP`` returns the message (one hop to Redis, one to
  the consumer). Huey's and RQ's design; the message is gone from Redis once popped, so a
  consumer that dies holding it loses it.
* ``pubsub+claim``: a script pushes and ``PUBLISH`` es; the subscribed consumer then takes the
  message with a second round trip (``LPOP`` here, the claim script in taskq). taskq's design:
  the claim is what records a lease, so a worker that dies holding a task loses nothing.
* ``signal+claim``: a script pushes and puts a token on a signal list when it is empty; the
  consumer ``BLPOP`` s the signal, then takes the message with a second round trip. The
  blocking-pop wake-up issue 14 proposes, for comparison with pub/sub.
* ``ping``: a ``PING`` round trip at the same rate: one hop there and back, the unit the
  others are made of.

At a few hundred messages a second both processes sleep between messages, and each hop wakes
a sleeping process: that wake-up, not Redis, is most of a hop. The figures are the median over
rounds of each round's percentile (the benchmarks' one definition, nearest rank:
:func:`taskq_bench.stats.summarize_ms`); the load flag follows the benchmarks' rule (>10% CPU used
by processes outside this benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from taskq_bench.fairness import measured_load, rotated
from taskq_bench.openloop import Schedule, run_open_loop
from taskq_bench.stats import summarize_ms

from taskq.server import EmbeddedServer

DESIGNS = ("blpop", "pubsub+claim", "signal+claim", "ping")
PUSH_PUBLISH = "redis.call('RPUSH', KEYS[1], ARGV[1]); redis.call('PUBLISH', KEYS[2], '1')"
PUSH_SIGNAL = "redis.call('RPUSH', KEYS[1], ARGV[1]); if redis.call('LLEN', KEYS[2]) == 0 then redis.call('RPUSH', KEYS[2], '1') end"  # noqa: E501
READY = "rt:ready"


async def consume(url: str, design: str, count: int) -> None:
    """The consumer process: take ``count`` messages by ``design``, push each one's latency (s)."""
    r = aioredis.Redis.from_url(url)
    seen: list[str] = []

    def took(raw: Any) -> None:  # bytes: the clients do not decode
        seen.append(repr(time.time() - float(raw)))

    async def drain() -> None:
        while (raw := await r.lpop("rt:q")) is not None:
            took(raw)

    pubsub = r.pubsub()  # subscribed only for pubsub+claim
    if design == "pubsub+claim":
        await pubsub.subscribe("rt:wake")
        await pubsub.get_message(timeout=5.0)  # the subscribe confirmation
    await r.rpush(READY, "1")
    while len(seen) < count:
        if design == "blpop":
            popped = await r.blpop(["rt:q"], timeout=1)
            if popped is not None:
                took(popped[1])
        elif design == "pubsub+claim":
            if await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0) is not None:
                await drain()
        elif await r.blpop(["rt:signal"], timeout=1) is not None:
            await drain()
    await r.rpush("rt:out", *seen)
    await pubsub.aclose()
    await r.aclose()


async def produce(url: str, design: str, rate: float, count: int) -> list[float]:
    """Send ``count`` messages at ``rate`` (open loop); the latencies in ms (for ``ping``: RTTs)."""
    r = aioredis.Redis.from_url(url)
    rtts: list[float] = []
    push_publish, push_signal = r.register_script(PUSH_PUBLISH), r.register_script(PUSH_SIGNAL)

    async def send(intended: float) -> None:
        if design == "blpop":
            await r.rpush("rt:q", repr(intended))
        elif design == "pubsub+claim":
            await push_publish(keys=["rt:q", "rt:wake"], args=[repr(intended)])
        elif design == "signal+claim":
            await push_signal(keys=["rt:q", "rt:signal"], args=[repr(intended)])
        else:
            await r.ping()
            rtts.append((time.time() - intended) * 1000)

    for _ in range(20):  # warm up: connections made, scripts loaded
        await send(time.time())
    rtts.clear()
    await run_open_loop(Schedule(rate, count, time.time() + 0.05), send)
    await r.aclose()
    return rtts


def one(url: str, design: str, rate: float, count: int) -> list[float]:
    client = redis.Redis.from_url(url)
    client.flushall()
    if design == "ping":
        return asyncio.run(produce(url, design, rate, count))
    consumer = subprocess.Popen([sys.executable, __file__, "--consume", design, "--url", url, "--count", str(count)])
    try:
        if client.blpop([READY], timeout=30) is None:
            raise RuntimeError(f"the {design} consumer did not start")
        asyncio.run(produce(url, design, rate, count))  # 20 warm-up sends, then count: the consumer takes them all
        if consumer.wait(timeout=60) != 0:
            raise RuntimeError(f"the {design} consumer failed")
    finally:
        consumer.kill()
    return [float(raw) * 1000 for raw in client.lrange("rt:out", 0, -1)[20:]]  # the warm-up's came first


def measure(rate: float, count: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {d: [] for d in DESIGNS}
    flagged = 0
    with EmbeddedServer(kind="redis-server") as server:
        for number in range(1, rounds + 1):
            for design in rotated(DESIGNS, number):
                with measured_load() as load:
                    summary = summarize_ms(one(server.url, design, rate, count))
                flagged += bool(load.loaded)
                runs[design].append({k: summary[k] for k in ("p50", "p90", "p99")})
    table = {
        d: {k: statistics.median(r[k] for r in rs) for k in rs[0]} | {"rounds": [r["p50"] for r in rs]}
        for d, rs in runs.items()
    }
    return {"rate_per_s": rate, "count": count, "rounds": rounds, "loaded_measurements": flagged, "designs": table}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--consume", choices=DESIGNS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consume:
        asyncio.run(consume(args.url, args.consume, args.count + 20))
        return
    result = measure(args.rate, args.count, args.rounds)
    print(f"{'design':14s} {'P50 ms':>8s} {'P90 ms':>8s} {'P99 ms':>8s}   P50 per round")
    for design, row in result["designs"].items():
        print(f"{design:14s} {row['p50']:8.3f} {row['p90']:8.3f} {row['p99']:8.3f}   {row['rounds']}")
    if result["loaded_measurements"]:
        print(
            f"{result['loaded_measurements']} measurement(s) ran on a loaded machine (>10% CPU outside the benchmark)"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
