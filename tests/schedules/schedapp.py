"""The app the schedule tests run in real worker processes (``taskq worker
tests.schedules.schedapp:tq``): one task that takes a moment, so a killed worker dies mid-run."""

from __future__ import annotations

import time

import taskq

tq = taskq.TaskQueue()


@tq.task(name="sched_tick", queue="sched", max_retries=5)
def sched_tick() -> None:
    time.sleep(0.3)
