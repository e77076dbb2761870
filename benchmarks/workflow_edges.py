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
each run); Redis commands count the scripts' own calls (steady whatever the machine's load, when
CPU time is not); round trips are the calls the client made. Usage::

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


def redis_commands(r: redis.Redis) -> int:
    """Commands run, the scripts' own calls included (they count in commandstats); scripts
    themselves (FCALL or EVALSHA) and INFO left out. Unlike CPU time, this does not move with the load."""
    stats = r.info("commandstats")
    skip = {"cmdstat_info", "cmdstat_fcall", "cmdstat_evalsha", "cmdstat_eval", "cmdstat_config"}
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_") and k not in skip)


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
    usec, commands = redis_usec(r), redis_commands(r)
    tq.close()
    r.close()
    return {"redis_usec": usec, "redis_commands": commands, "round_trips": counter.calls, "edges": edges}


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
        shapes = ("independent", "serial", "group", "chain")
        by_shape: dict[str, list[dict[str, float]]] = {shape: [] for shape in shapes}
        for _ in range(opts.rounds):  # rounds rotate through the shapes, so a load change hits all
            for shape in shapes:
                by_shape[shape].append(run_once(url, shape, opts.n))
        for shape, runs in by_shape.items():
            results[shape] = {
                "redis_usec": statistics.median(x["redis_usec"] for x in runs),
                "redis_commands": statistics.median(x["redis_commands"] for x in runs),
                "round_trips": statistics.median(x["round_trips"] for x in runs),
                "edges": runs[0]["edges"],
            }
        for shape, baseline in (("group", "independent"), ("chain", "serial")):
            res, base = results[shape], results[baseline]
            res["redis_usec_per_edge"] = round((res["redis_usec"] - base["redis_usec"]) / res["edges"], 2)
            res["round_trips_per_edge"] = round((res["round_trips"] - base["round_trips"]) / res["edges"], 3)
            res["redis_commands_per_edge"] = round((res["redis_commands"] - base["redis_commands"]) / res["edges"], 2)
        for baseline in ("independent", "serial"):
            results[baseline]["redis_usec_per_task"] = round(results[baseline]["redis_usec"] / opts.n, 2)
            results[baseline]["redis_commands_per_task"] = round(results[baseline]["redis_commands"] / opts.n, 2)
        print(json.dumps({"n": opts.n, "rounds": opts.rounds, "results": results}, indent=2))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
