"""Overhead per workflow edge: Redis CPU (INFO commandstats) and round trips.

Runs the same number of tasks three ways on one Redis, each drained by the same loop of
batched claims and completions (the worker's plans, no worker process, so only Redis work
is counted):

* ``independent``: N tasks from ``enqueue_many`` (no edges), claimed 100 at a time;
* ``serial``: the same, claimed one at a time (a chain can run no other way);
* ``group``: a group of N - 1 members with a callback (N - 1 edges), one ``tq.submit``;
* ``chain``: a chain of N steps (N - 1 edges), each released by the completion of the one
  before (the client needs no round trip between steps); compared with ``serial``.

Redis CPU is the sum of ``usec`` over every command in ``INFO commandstats`` (reset before
each run); round trips are the calls the client made. Usage::

    python benchmarks/workflow_edges.py [--url redis://...] [--n 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
from typing import Any

import redis

import taskq
from taskq.server import EmbeddedServer


def redis_usec(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k.startswith("cmdstat_") and k != "cmdstat_info")


class Counting:
    """Counts the client's round trips (each plan is one call or one pipeline)."""

    def __init__(self, tq: taskq.TaskQueue) -> None:
        self.calls = 0
        run = tq._exec.run

        def counted(plan: Any) -> Any:
            self.calls += 1
            return run(plan)

        tq._exec.run = counted  # type: ignore[method-assign]


def drain(tq: taskq.TaskQueue, batch: int = 100) -> int:
    done = 0
    while True:
        got = tq._exec.run(tq.ops.claim("bench", batch, 60_000, "bench-worker"))
        if not got:
            return done
        tq._exec.run(tq.ops.finish([tq.ops.complete_command(t, "1") for t in got]))
        done += len(got)


def run_once(url: str, shape: str, n: int) -> dict[str, float]:
    """One run of ``shape``; the Redis CPU and round trips from the first write to the drain."""
    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushall()
    tq = taskq.TaskQueue(url, events=False)

    @tq.task(name="bench.step", queue="bench")
    def step(*args: Any) -> int:
        return 1

    tq.enqueue_many([{"name": "bench.step", "args": [0]}])  # register the queue, warm the scripts
    drain(tq)
    r.config_resetstat()
    counter = Counting(tq)
    if shape in ("independent", "serial"):
        tq.enqueue_many([{"name": "bench.step", "args": [i]} for i in range(n)])
        edges = 0
    elif shape == "group":
        tq.submit(taskq.group([step.s(i) for i in range(n - 1)], callback=step.s()))
        edges = n - 1
    else:
        tq.submit(taskq.chain(step.s(0), *[step.s() for _ in range(n - 1)]))
        edges = n - 1
    assert drain(tq, 1 if shape in ("serial", "chain") else 100) == n
    usec = redis_usec(r)
    tq.close()
    r.close()
    return {"redis_usec": usec, "round_trips": counter.calls, "edges": edges}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    server = None
    url = opts.url
    if url is None:
        server = EmbeddedServer().start()
        url = server.url
    try:
        results: dict[str, dict[str, float]] = {}
        for shape in ("independent", "serial", "group", "chain"):
            runs = [run_once(url, shape, opts.n) for _ in range(opts.rounds)]
            results[shape] = {
                "redis_usec": statistics.median(x["redis_usec"] for x in runs),
                "round_trips": statistics.median(x["round_trips"] for x in runs),
                "edges": runs[0]["edges"],
            }
        for shape, baseline in (("group", "independent"), ("chain", "serial")):
            res, base = results[shape], results[baseline]
            res["redis_usec_per_edge"] = round((res["redis_usec"] - base["redis_usec"]) / res["edges"], 2)
            res["round_trips_per_edge"] = round((res["round_trips"] - base["round_trips"]) / res["edges"], 3)
        for baseline in ("independent", "serial"):
            results[baseline]["redis_usec_per_task"] = round(results[baseline]["redis_usec"] / opts.n, 2)
        print(json.dumps({"n": opts.n, "rounds": opts.rounds, "results": results}, indent=2))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
