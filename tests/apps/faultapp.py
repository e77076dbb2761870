"""The app served by real worker processes in tests/worker/test_faults.py and tests/worker/test_pool.py.

Every task records each execution from inside the task, in Redis, so a test can count
runs across processes (including ones it killed):

* ``HINCRBY runs <n> 1``: how many times task ``n`` started;
* ``RPUSH ran <n>:<pid>``: which process ran it, in order.

The URL comes from ``TASKQ_REDIS_URL``, which ``taskq --url URL worker ...`` sets before
importing this module. Never import it from the test process itself.
"""

from __future__ import annotations

import asyncio
import os
import time

import redis
import redis.asyncio as aioredis

import taskq

tq = taskq.TaskQueue()
_sync = redis.Redis.from_url(tq.url)
_async: aioredis.Redis | None = None


def _record(n: int) -> int:
    pid = os.getpid()
    with _sync.pipeline(transaction=True) as pipe:
        pipe.hincrby("runs", str(n), 1)
        pipe.rpush("ran", f"{n}:{pid}")
        pipe.execute()
    return pid


@tq.task(name="fault.work", max_retries=50)
def work(n: int, hold_ms: int = 20) -> int:
    """Record the run, hold the lease for ``hold_ms``, return the pid that ran it."""
    pid = _record(n)
    time.sleep(hold_ms / 1000)
    return pid


@tq.task(name="fault.hold", max_retries=3)
async def hold(n: int, seconds: float) -> int:
    """An async task that holds its lease for ``seconds`` (cancellable)."""
    global _async
    if _async is None:
        _async = aioredis.Redis.from_url(tq.url)
    pid = os.getpid()
    async with _async.pipeline(transaction=True) as pipe:
        pipe.hincrby("runs", str(n), 1)
        pipe.rpush("ran", f"{n}:{pid}")
        await pipe.execute()
    await asyncio.sleep(seconds)
    return pid


@tq.task(name="fault.block", max_retries=3)
def block(n: int, seconds: float) -> int:
    """A sync task that holds its thread (and lease) for ``seconds``; not interruptible."""
    pid = _record(n)
    time.sleep(seconds)
    return pid


@tq.task(name="fault.once", max_retries=0)
def once(n: int, seconds: float) -> int:
    """Like ``block``, but with no retries: a lost lease makes it dead."""
    pid = _record(n)
    time.sleep(seconds)
    return pid
