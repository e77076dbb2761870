"""The task app benchmark workers run (``benchmarks.apps:tq``): no-op and time-stamping tasks."""

from __future__ import annotations

import os
import time

import taskq

tq = taskq.TaskQueue(events=os.environ.get("TASKQ_BENCH_EVENTS", "1") == "1")


@tq.task(queue="bench")
async def noop() -> None:
    """Does nothing: measures the queue, not the work."""


@tq.task(queue="bench")
async def stamp() -> float:
    """Returns the wall-clock time it started (same machine, same clock as the producer)."""
    return time.time()
