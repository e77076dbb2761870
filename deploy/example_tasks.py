"""The task module the standard deployment runs (``docker-compose.yml``: ``TASKQ_APP=example_tasks:tq``).

The API and the workers load this same module, so the API knows the task names and their
parameters. Replace it with your own module: ``deploy/compose.tasks.yml`` mounts a folder of
yours and names your APP (see the README's "Deploy" section).

The server comes from ``TASKQ_REDIS_URL``, which the compose file sets to its Redis service.
"""

from __future__ import annotations

import asyncio
import os

import taskq

if not os.environ.get("TASKQ_REDIS_URL"):
    # In the stack the URL is always set; without it TaskQueue() would look on localhost or
    # start a private embedded server, and the API and workers would not share a queue.
    raise RuntimeError("example_tasks needs TASKQ_REDIS_URL (docker-compose.yml sets it)")

tq = taskq.TaskQueue()


@tq.task()
def add(a: int, b: int) -> int:
    """Add two numbers: the smallest task there is."""
    return a + b


@tq.task(timeout_s=600)
async def sleep(seconds: float) -> float:
    """Wait ``seconds`` without holding a thread; returns how long it waited."""
    await asyncio.sleep(seconds)
    return seconds


@tq.task(max_retries=2)
def fail(message: str) -> None:
    """Always raise: the task is retried twice with backoff, then dead-lettered."""
    raise RuntimeError(message)
