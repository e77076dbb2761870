"""The app served by real worker processes on a Redis Cluster (tests/cluster/test_cluster_failover.py).

Every run records itself from inside the task, ``RPUSH {clusterfault}:ran <n>:<pid>`` (one hash
tag, so one slot), so a test counts runs across processes, including ones it killed. The URL
comes from ``TASKQ_REDIS_URL``, which ``taskq --url URL worker ...`` sets before importing this
module. Never import it from the test process itself.
"""

from __future__ import annotations

import os
import time

import taskq
from taskq.connection import sync_client

#: The list every run is recorded in.
RAN_KEY = "{clusterfault}:ran"

tq = taskq.TaskQueue()
_sync = sync_client(tq.url)


@tq.task(name="cluster.work", max_retries=50)
def work(n: int, hold_ms: int = 20) -> int:
    """Record the run, hold the lease for ``hold_ms``, return the pid that ran it."""
    pid = os.getpid()
    _sync.rpush(RAN_KEY, f"{n}:{pid}")
    time.sleep(hold_ms / 1000)
    return pid
