"""The APP the API benchmark serves (``taskq_api.bench_app:tq``): one no-op task."""

from __future__ import annotations

import os

import taskq

tq = taskq.TaskQueue(os.environ.get("TASKQ_REDIS_URL"))


@tq.task(name="noop", queue="bench")  # type: ignore[untyped-decorator]
def noop(n: int = 0) -> int:
    return n
