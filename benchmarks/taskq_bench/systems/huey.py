"""Huey with ``RedisHuey``: calling the task enqueues it, and the ``huey_consumer`` command.

* producer: ``noop(t)`` (single; Huey has no bulk enqueue: ``task.map`` loops over
  ``enqueue``);
* ``RedisHuey("bench", url=…)`` with Huey's defaults: blocking dequeue (BRPOP), results on
  (nothing is stored for a ``None`` result);
* worker: ``huey_consumer taskq_bench.systems.huey.huey -w W -k thread|process -n -q``
  (``-n``: no periodic-task scheduler, ``-q``: no per-task INFO log lines).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from huey import RedisHuey

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

huey = RedisHuey(QUEUE, url=redis_url())


@huey.task()
def noop(intended: float = 0.0) -> None:
    task_done(time.time(), intended)


@huey.task()
def io(intended: float = 0.0) -> None:
    started = time.time()
    io_round_trip()
    task_done(started, intended)


@huey.task()
def cpu(intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


@huey.task()
def sleep(intended: float = 0.0) -> None:
    started = time.time()
    time.sleep(SLEEP_S)
    task_done(started, intended)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "cpu": cpu, "sleep": sleep}


class HueyAdapter(Adapter):
    name = "huey"
    distribution = "huey"
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 1, "thread"), WorkerSetting(1, 8, "thread"))
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 1, "process"), WorkerSetting(4, 1, "process"))
    # huey_consumer: -w 1 -k thread; on two cores, -k process -w 2
    default_one = WorkerSetting(1, 1, "thread")
    default_two = WorkerSetting(2, 1, "process")
    producer_note = "calling the task: one Redis LPUSH per task"

    def grid_setting(self, processes: int, concurrency: int) -> WorkerSetting | str:
        """``processes`` consumers, each ``-k thread -w concurrency`` (one: the plain thread setting)."""
        return WorkerSetting(processes, concurrency, "thread" if processes == 1 else "threads")

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        """``-k thread -w C`` runs C threads in one process; ``-k process -w P`` runs P processes."""
        if setting.variant == "threads":  # one consumer per process, each with its threads
            argv = [script(python, "huey_consumer"), "taskq_bench.systems.huey.huey", "-w", str(setting.concurrency),
                    "-k", "thread", "-n", "-q"]  # fmt: skip
            return [argv for _ in range(setting.processes)]
        kind = setting.variant or ("process" if setting.processes > 1 else "thread")
        workers = setting.processes if kind == "process" else setting.concurrency
        return [[script(python, "huey_consumer"), "taskq_bench.systems.huey.huey", "-w", str(workers), "-k", kind,
                 "-n", "-q"]]  # fmt: skip

    def scaling_setting(self, processes: int, concurrency: int) -> WorkerSetting:
        if processes > 1:
            return WorkerSetting(processes, 1, "process")
        return WorkerSetting(1, concurrency, "thread")

    def send(self, kind: Kind, intended: float) -> None:
        TASKS[kind](intended)


ADAPTER = HueyAdapter
