"""The task that ``taskq chaos`` runs (:mod:`taskq.chaos`): its workers serve
``taskq.chaos_tasks:tq``, started with ``--url`` pointing at the chaos run's own Redis.

Each attempt that runs the body records itself in one hash (:data:`taskq.chaos.RUNS_KEY`),
keyed by the JSON ``[task id, lease token]``: the write is idempotent per attempt (a client retry of
the same HSET counts once), so a task with more than one field ran more than once.
"""

from __future__ import annotations

import json
import os
import time

import redis

import taskq
from taskq.chaos import QUEUE, RUNS_KEY, TASK_NAME

tq = taskq.TaskQueue(embedded=False)  # the chaos run passes --url; never a private server
_log = redis.Redis.from_url(tq.url, socket_timeout=2, socket_connect_timeout=2)


def _chaos_work(n: int, seconds: float = 0.0) -> int:
    """Record this attempt of task ``n``, then pretend to work for ``seconds``."""
    task = taskq.current_task()
    if task is not None:  # None when called directly, outside a worker: nothing to count
        attempt = json.dumps([task.id, task.lease_token])
        _log.hset(RUNS_KEY, attempt, json.dumps({"n": n, "pid": os.getpid(), "attempt": task.attempt}))
    time.sleep(seconds)
    return n


chaos_work = tq.task(_chaos_work, name=TASK_NAME, queue=QUEUE, max_retries=20)
