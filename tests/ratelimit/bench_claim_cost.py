"""Redis CPU per claimed task, with and without a rate limit (the README's closing figure).

Run: ``.venv/bin/python tests/ratelimit/bench_claim_cost.py`` (starts its own embedded
server). For each case it enqueues the tasks, resets the server's statistics, claims them
all (batches of ``--batch``), and reads ``INFO commandstats``: the EVALSHA time (the claim
script, every command inside it included) divided by the tasks claimed. The limits are set
high enough never to hold a task back, so every case claims the same tasks and the
difference is the limiter's own cost.
"""

from __future__ import annotations

import argparse
import statistics

import taskq
from taskq.ratelimit import parse_rate, set_limits_plan
from taskq.server import EmbeddedServer

CASES = ("no limit", "queue limit (GCRA)", "queue limit (token bucket)", "task-name limit", "per-key limit")


def setup(tq: taskq.TaskQueue, case: str, n: int) -> None:
    tq.redis.flushall()
    fast = "1000000/s"
    if case == "queue limit (GCRA)":
        tq.configure_queue("default", rate=parse_rate(fast, burst=n))
    elif case == "queue limit (token bucket)":
        tq.configure_queue("default", rate=parse_rate(fast, burst=n, algorithm="token_bucket"))
    elif case in ("task-name limit", "per-key limit"):
        tq._exec.run(set_limits_plan(tq.ops, "default", {"job": parse_rate(fast, burst=n)}))
    if case == "per-key limit":  # 50 customers, each limiter open
        tq.enqueue_many([{"name": "job", "force": True, "meta": {"taskq.rate_key": f"c{i % 50}"}} for i in range(n)])
    else:
        tq.enqueue_many([{"name": "job", "force": True}] * n)


def run(tq: taskq.TaskQueue, case: str, n: int, batch: int) -> float:
    setup(tq, case, n)
    tq.redis.config_resetstat()
    claimed = 0
    while claimed < n:
        got = tq._exec.run(tq.ops.claim("default", batch, 60_000, "bench"))
        assert got, f"{case}: the limit held tasks back; the benchmark needs it open"
        claimed += len(got)
    stats = tq.redis.info("commandstats")
    usec = sum(float(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "fcall"))
    return usec / claimed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    server = EmbeddedServer().start()
    try:
        with taskq.TaskQueue(server.url, events=False) as tq:
            print(f"{server.kind}, {options.tasks} tasks, claims of {options.batch}, median of {options.rounds}")
            for case in CASES:
                rounds = [run(tq, case, options.tasks, options.batch) for _ in range(options.rounds)]
                print(f"  {case:28s} {statistics.median(rounds):6.2f} us of Redis CPU per claimed task")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
