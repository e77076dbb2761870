"""Drive the worker side of taskq through its plans directly, for tests that need a
claimed, completed, failed or expired task without running a worker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis

import taskq
from taskq.keys import GlobalKeys
from taskq.ops import ClaimedTask

LONG_LEASE_MS = 60_000
PLACES = ("queued", "scheduled", "running", "dead")


def claim(
    tq: taskq.TaskQueue, queue: str = "default", n: int = 1, lease_ms: int = LONG_LEASE_MS, worker: str = "w1"
) -> list[ClaimedTask]:
    """Claim up to ``n`` tasks as worker ``worker``."""
    return tq._exec.run(tq.ops.claim(queue, n, lease_ms, worker))


def claim_one(tq: taskq.TaskQueue, queue: str = "default", lease_ms: int = LONG_LEASE_MS) -> ClaimedTask:
    (task,) = claim(tq, queue, 1, lease_ms)
    return task


def complete(tq: taskq.TaskQueue, task: ClaimedTask, result: Any = None) -> Any:
    """Complete ``task``; returns the script reply (1) or the inline error (LeaseLost)."""
    return tq._exec.run(tq.ops.finish([tq.ops.complete_command(task, json.dumps(result))]))[0]


def fail(
    tq: taskq.TaskQueue,
    task: ClaimedTask,
    retry_delay_ms: int = -1,
    error_type: str = "ValueError",
    error: str = "boom",
    traceback: str = "Traceback (most recent call last):\nValueError: boom",
) -> Any:
    """Fail ``task`` (``retry_delay_ms`` -1 = dead now); returns the reply or inline error."""
    cmd = tq.ops.fail_command(task, error_type, error, traceback, retry_delay_ms)
    return tq._exec.run(tq.ops.finish([cmd]))[0]


def kill(tq: taskq.TaskQueue, queue: str = "default", **fail_kwargs: Any) -> ClaimedTask:
    """Claim the next task and send it straight to the dead-letter queue."""
    task = claim_one(tq, queue)
    reply = fail(tq, task, -1, **fail_kwargs)
    assert reply[0] == "dead", reply
    return task


def expire_leases(tq: taskq.TaskQueue, rc: redis.Redis, queue: str, ids: list[str]) -> tuple[int, int]:
    """Make the leases of ``ids`` overdue (score 0 in ``running``) and run the reaper."""
    running = tq.ops.queue_keys(queue).running
    for task_id in ids:
        assert rc.zadd(running, {task_id: 0}, xx=True, ch=True) == 1, f"{task_id} is not running"
    return tq._exec.run(tq.ops.requeue_expired(queue))


def wait_ms(ms: float) -> None:
    """Scripts read the Redis server clock; on one host a local sleep is enough to pass it."""
    time.sleep(ms / 1000)


def places(tq: taskq.TaskQueue, rc: redis.Redis, queue: str, task_id: str) -> list[str]:
    """The sorted sets of ``queue`` that hold ``task_id``."""
    k = tq.ops.queue_keys(queue)
    pipe = rc.pipeline(transaction=False)
    for place in PLACES:
        pipe.zscore(getattr(k, place), task_id)
    return [place for place, score in zip(PLACES, pipe.execute(), strict=True) if score is not None]


def queue_keys_in_db(rc: redis.Redis, queue: str, prefix: str = "taskq") -> set[str]:
    """Every key of ``queue`` in the DB (via SCAN)."""
    return set(rc.scan_iter(match=GlobalKeys(prefix).queue_scan_pattern(queue), count=1000))


def release(tq: taskq.TaskQueue, task: ClaimedTask) -> int:
    """Give a leased task back to ``queued`` (graceful shutdown); returns how many moved."""
    return tq._exec.run(tq.ops.release(task.queue, [(task.id, task.token)]))


def extend(tq: taskq.TaskQueue, task: ClaimedTask, lease_ms: int = LONG_LEASE_MS) -> int:
    """Heartbeat one lease: 1 extended, 2 extended and cancel requested, 0 lease lost."""
    return tq._exec.run(tq.ops.extend(task.queue, [(task.id, task.token)], lease_ms))[0]


def server_ms(rc: redis.Redis) -> int:
    """The Redis server's clock, in whole ms (what the scripts stamp: lib/common.lua, server_time)."""
    seconds, micros = rc.time()
    return int(seconds) * 1000 + int(micros) // 1000


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; a generous bound, never a speed assertion."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
