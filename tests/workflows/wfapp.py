"""The app real worker processes serve in tests/workflows/test_properties.py (imported as
``tests.workflows.wfapp:tq`` from the repository; never from the test process itself).
Each run is recorded from inside the task (``RPUSH ran <n>:<pid>``)."""

from __future__ import annotations

import json
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


@tq.task(name="wf.node", max_retries=50)
def node(*args: Any) -> int:
    """``node([parents' results,] n, hold_ms, fail_first)``: record the run and what it was fed;
    fail the first attempt when asked (a retry must not count the node twice)."""
    n, hold_ms, fail_first = args[-3], args[-2], args[-1]
    _record(n)
    if len(args) == 4:
        _sync.hset("fed", str(n), json.dumps(args[0]))
    time.sleep(hold_ms / 1000)
    ctx = taskq.current_task()
    if fail_first and ctx is not None and ctx.attempt == 1:
        raise ValueError(f"node {n} fails its first attempt")
    return int(n)
