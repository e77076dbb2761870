"""The task ``make soak`` runs (benchmarks/soak.py): its workers serve ``soak_tasks:tq``,
started with ``--url`` pointing at the soak's own Redis and this directory on PYTHONPATH.

Each run of the body sets bit ``n`` of one bitmap (:data:`DONE_KEY`, 1 bit per task, so the
soak's own bookkeeping does not grow Redis memory); a run that finds its bit already set
(the task ran before: a worker was killed after the body and before the completion) sets bit
``n`` of :data:`AGAIN_KEY`. The soak injects no connection drops, so a client retry of one
SETBIT (which would look like a second run) does not happen.
"""

from __future__ import annotations

import time

import redis

import taskq

QUEUE = "soak"
TASK_NAME = "soak_work"
DONE_KEY = "taskq-soak:done"
AGAIN_KEY = "taskq-soak:again"

tq = taskq.TaskQueue(embedded=False)  # the soak passes --url; never a private server
_log = redis.Redis.from_url(tq.url, socket_timeout=5, socket_connect_timeout=5)


def _soak_work(n: int, seconds: float = 0.0) -> int:
    """Mark task ``n`` done (and done again if it was), then pretend to work for ``seconds``."""
    if _log.setbit(DONE_KEY, n, 1):
        _log.setbit(AGAIN_KEY, n, 1)
    time.sleep(seconds)
    return n


soak_work = tq.task(_soak_work, name=TASK_NAME, queue=QUEUE, max_retries=20)
