"""The tasks of the demo (examples/demo.py). Workers import this module as ``demo_tasks:tq``."""

from __future__ import annotations

import os
import time

import redis

import taskq

tq = taskq.TaskQueue()  # TASKQ_REDIS_URL, set by the demo, names its embedded server
log = redis.Redis.from_url(tq.url, decode_responses=True)


@tq.task(queue="demo", max_retries=5)
def work(n: int, level: int, seconds: float = 0.0) -> str:
    """Record that task ``n`` ran (and in which process), then pretend to work."""
    log.rpush("demo:ran", f"{n}:{level}:{os.getpid()}")
    time.sleep(seconds)
    return f"task {n} done by pid {os.getpid()}"
