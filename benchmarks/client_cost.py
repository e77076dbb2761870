"""The client's own CPU per single enqueue (issue 14), blocking and asyncio, on a private
redis-server.

For each client it measures the process CPU time (``time.process_time``: user + system, so
the socket calls count too, while Redis's own work, in another process, does not) of
``--calls`` single enqueues of a registered task, and of as many bare enqueue script calls
built beforehand (the very ``EVALSHA`` arguments of such enqueues, each with its own task id)
sent through the executor's fast path straight to a connection: the I/O floor every enqueue
pays, with the same server work and reply. The difference (``python_us``) is taskq's
Python per enqueue: validation, the task id, JSON, the plan, the flow and the executor's
handling of the reply. ``outside_executor_us`` is the CPU of an enqueue spent outside the
executor's ``run``/``drive`` (timed around them). Each figure is the lowest of ``--rounds``
rounds (noise only adds CPU time); the load average is printed before and after.

    .venv/bin/python benchmarks/client_cost.py [--calls 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import taskq
from taskq.server import EmbeddedServer


def cpu_us(fn: Callable[[int], Any], calls: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per call of ``fn(i)`` for i in range(calls)."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.process_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6


async def acpu_us(fn: Callable[[int], Awaitable[Any]], calls: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(calls):
        await fn(i)
    return (time.process_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6


def floor_calls(tq: taskq.TaskQueue | taskq.AsyncTaskQueue, calls: int) -> list[tuple[Any, ...]]:
    """The script call arguments of ``calls`` single enqueues, built now (not timed), as the
    executor sends them: FCALL once the warm-up loaded the library, unless TASKQ_FUNCTIONS=0."""
    heads = tq._exec._fn.heads  # empty with the switch off
    commands = [tq.ops.enqueue([tq._spec("noop", (i,))]).commands[0] for i in range(calls)]
    return [heads[c.script.sha] + c.args[2:] if heads and c.script else c.args for c in commands]


class RunTimer:
    """Wraps a client's executor ``run`` (and ``drive``) to add up the CPU time spent inside:
    what is left of an enqueue is the client's Python outside the executor."""

    def __init__(self, executor: Any, is_async: bool) -> None:
        self.inside = 0.0
        self.depth = 0
        for name in ("run", "drive"):
            inner = getattr(executor, name)
            setattr(executor, name, self._async(inner) if is_async else self._sync(inner))

    def _sync(self, inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def timed(arg: Any) -> Any:
            self.depth += 1  # a drive runs plans: only the outermost call is timed
            started = time.process_time()
            try:
                return inner(arg)
            finally:
                self.depth -= 1
                if not self.depth:
                    self.inside += time.process_time() - started

        return timed

    def _async(self, inner: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        async def timed(arg: Any) -> Any:
            self.depth += 1
            started = time.process_time()  # the loop runs nothing else meanwhile: all of it is this call's
            try:
                return await inner(arg)
            finally:
                self.depth -= 1
                if not self.depth:
                    self.inside += time.process_time() - started

        return timed


def noop(x: int) -> None:
    """The task enqueued (never run here)."""


def blocking(url: str, calls: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    with taskq.TaskQueue(url) as tq:
        task = tq.task(name="noop")(noop)
        floor_args = floor_calls(tq, calls)
        scripts = tq._exec._scripts
        if scripts is None:
            raise SystemExit("TASKQ_SPEEDUPS is off: the floor is measured on the fast path, turn it on")
        for _ in range(200):
            tq.enqueue("noop", (1,))
        for _ in range(rounds):
            runs = {
                "enqueue(name)": cpu_us(lambda i: tq.enqueue("noop", (i,)), calls),
                "task.enqueue": cpu_us(lambda i: task.enqueue(i), calls),
                "floor": cpu_us(lambda i: scripts.call(floor_args[i]), calls),
            }
            for what, (cpu, wall) in runs.items():
                best[what] = min(best.get(what, cpu), cpu)
                best[what + " wall"] = min(best.get(what + " wall", wall), wall)
            tq.redis.flushall()
            tq._known_queues.clear()  # the registration went with the flush
        tq.enqueue("noop", (1,))
        for _ in range(rounds):
            timer = RunTimer(tq._exec, is_async=False)
            cpu, _ = cpu_us(lambda i: tq.enqueue("noop", (i,)), calls)
            del tq._exec.run, tq._exec.drive  # the class's own again
            outside = cpu - timer.inside / calls * 1e6
            best["outside executor"] = min(best.get("outside executor", outside), outside)
    return best


async def asyncio_client(url: str, calls: int, rounds: int) -> dict[str, float]:
    best: dict[str, float] = {}
    tq = taskq.AsyncTaskQueue(url)
    try:
        task = tq.task(name="noop")(noop)
        floor_args = floor_calls(tq, calls)
        scripts = tq._exec._scripts
        if scripts is None:
            raise SystemExit("TASKQ_SPEEDUPS is off: the floor is measured on the fast path, turn it on")
        for _ in range(200):
            await tq.enqueue("noop", (1,))
        for _ in range(rounds):
            runs = {
                "enqueue(name)": await acpu_us(lambda i: tq.enqueue("noop", (i,)), calls),
                "task.enqueue": await acpu_us(lambda i: task.enqueue(i), calls),
                "floor": await acpu_us(lambda i: scripts.call(floor_args[i]), calls),
            }
            for what, (cpu, wall) in runs.items():
                best[what] = min(best.get(what, cpu), cpu)
                best[what + " wall"] = min(best.get(what + " wall", wall), wall)
            await tq.redis.flushall()
            tq._known_queues.clear()
        await tq.enqueue("noop", (1,))
        for _ in range(rounds):
            timer = RunTimer(tq._exec, is_async=True)
            cpu, _ = await acpu_us(lambda i: tq.enqueue("noop", (i,)), calls)
            del tq._exec.run, tq._exec.drive
            outside = cpu - timer.inside / calls * 1e6
            best["outside executor"] = min(best.get("outside executor", outside), outside)
    finally:
        await tq.redis.aclose()
    return best


def report(client: str, best: dict[str, float]) -> None:
    for what in ("enqueue(name)", "task.enqueue"):
        row = {
            "client": client,
            "call": what,
            "cpu_us": round(best[what], 1),
            "floor_cpu_us": round(best["floor"], 1),
            "python_us": round(best[what] - best["floor"], 1),
            "wall_us": round(best[what + " wall"], 1),
            "outside_executor_us": round(best["outside executor"], 1) if what == "enqueue(name)" else None,
            "calls_per_s": round(1e6 / best[what + " wall"]),
        }
        print(json.dumps(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps({"loadavg": [round(x, 2) for x in os.getloadavg()]}))
    with EmbeddedServer(kind="redis-server") as server:
        report("blocking", blocking(server.url, args.calls, args.rounds))
        report("asyncio", asyncio.run(asyncio_client(server.url, args.calls, args.rounds)))
    print(json.dumps({"loadavg": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
