"""The app real worker processes serve in tests/workflows/test_properties.py (imported as
``tests.workflows.wfapp:tq`` from the repository; never from the test process itself).
Each run is recorded from inside the task (``RPUSH ran <n>:<pid>``)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

import taskq

tq = taskq.TaskQueue()
_sync = redis.Redis.from_url(tq.url)


def _record(n: int) -> None:
    _sync.rpush("ran", f"{n}:{os.getpid()}")


@tq.task(name="wf.work", max_retries=50)
def work(*args: Any) -> int:
    """``work([fed result,] n, hold_ms)``: record the run, hold the lease, return n."""
    n, hold_ms = args[-2], args[-1]
    _record(n)
    time.sleep(hold_ms / 1000)
    return int(n)


@tq.task(name="wf.join", max_retries=50)
def join(results: list[Any], n: int) -> dict[str, Any]:
    """A group's callback: record the run and return the members' results."""
    _record(n)
    return {"n": n, "inputs": results}
