"""Celery with the Redis broker: ``task.delay`` / ``group(...).apply_async()`` and ``celery worker``.

* producer: ``noop.delay(t)`` (single); ``group(noop.s(0.0) for …).apply_async()`` (Celery's
  way to send many at once; it still publishes one message per task);
* no result backend (``task_ignore_result``): the fastest standard setup for fire-and-forget
  work; completion is seen through the tasks' own stamps, like every system here;
* worker: ``celery -A taskq_bench.systems.celery worker -Q bench -l warning
  --without-gossip --without-mingle --without-heartbeat --prefetch-multiplier 64`` with a
  pool per setting: ``-P threads -c C`` or ``-P solo`` (one process), ``-P prefork -c P``
  (P child processes under one parent). Early acks (Celery's default).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from celery import Celery, group

from taskq_bench.recorder import task_done
from taskq_bench.systems.base import (
    QUEUE,
    SLEEP_S,
    Adapter,
    Kind,
    WorkerSetting,
    cpu_work,
    io_round_trip,
    redis_url,
    script,
)

PREFETCH_MULTIPLIER = 64

app = Celery("bench", broker=redis_url())
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)


@app.task(name="noop")
def noop(intended: float = 0.0) -> None:
    task_done(time.time(), intended)


@app.task(name="io")
def io(intended: float = 0.0) -> None:
    started = time.time()
    io_round_trip()
    task_done(started, intended)


@app.task(name="cpu")
def cpu(intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


@app.task(name="sleep")
def sleep(intended: float = 0.0) -> None:
    started = time.time()
    time.sleep(SLEEP_S)
    task_done(started, intended)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "cpu": cpu, "sleep": sleep}


class CeleryAdapter(Adapter):
    name = "celery"
    distribution = "celery"
    bulk_api = "group(...).apply_async()"
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 1, "solo"), WorkerSetting(1, 8, "threads"))
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 1, "prefork"), WorkerSetting(2, 1, "solo"))
    # `celery worker`: the prefork pool with -c = the CPU count (one child per core)
    default_one = WorkerSetting(1, 1, "prefork")
    default_two = WorkerSetting(2, 1, "prefork")
    producer_note = "delay: one kombu publish (LPUSH) per task"

    def grid_setting(self, processes: int, concurrency: int) -> WorkerSetting | str:
        """``processes`` workers, each ``-P threads -c concurrency``."""
        return WorkerSetting(processes, concurrency, "threads")

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        base = [script(python, "celery"), "-A", "taskq_bench.systems.celery", "worker", "-Q", QUEUE,
                "-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--prefetch-multiplier", str(PREFETCH_MULTIPLIER)]  # fmt: skip
        if setting.variant == "prefork":
            return [[*base, "-P", "prefork", "-c", str(setting.processes), "-n", "bench0@%h"]]
        pool = ["-P", setting.variant or "threads", "-c", str(setting.concurrency)]
        return [[*base, *pool, "-n", f"bench{i}@%h"] for i in range(setting.processes)]

    def scaling_setting(self, processes: int, concurrency: int) -> WorkerSetting:
        if concurrency == 1:
            return WorkerSetting(processes, 1, "prefork" if processes > 1 else "solo")
        return WorkerSetting(processes, concurrency, "threads")

    def send(self, kind: Kind, intended: float) -> None:
        TASKS[kind].delay(intended)

    def send_bulk(self, kind: Kind, count: int) -> None:
        group(TASKS[kind].s(0.0) for _ in range(count)).apply_async()


ADAPTER = CeleryAdapter
