"""The APP the API tests serve and their worker processes run (``apiapp:tq``)."""

from __future__ import annotations

import os
from typing import Any

import taskq

QUEUE = "api"


def register(tq: Any) -> None:
    """The test tasks, registered on ``tq`` (the workers' app and the API's share them)."""

    @tq.task(name="add", queue=QUEUE)
    def add(a: int, b: int) -> int:
        return a + b

    @tq.task(name="boom", queue=QUEUE, max_retries=0)
    def boom(message: str) -> None:
        raise ValueError(message)

    @tq.task(name="request_meta", queue=QUEUE)
    def request_meta() -> dict[str, str]:
        context = taskq.current_task()
        return dict(context.meta) if context else {}


tq = taskq.TaskQueue(os.environ.get("TASKQ_REDIS_URL", "redis://127.0.0.1:1/0"))
register(tq)
