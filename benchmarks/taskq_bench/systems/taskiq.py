"""taskiq with taskiq-redis's ``ListQueueBroker``: ``task.kiq`` and the ``taskiq worker`` command.

* producer: ``await noop.kiq(t)`` after ``broker.startup()`` (no bulk enqueue API);
* broker: ``ListQueueBroker`` (LPUSH / BRPOP), taskiq-redis's fastest broker; note it has no
  acknowledgements (a task taken by a worker that dies is lost), unlike ``RedisStreamBroker``;
  no result backend;
* worker: ``taskiq worker taskq_bench.systems.taskiq:broker --workers P --max-async-tasks C
  --log-level WARNING`` (taskiq's own process pool).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from taskiq_redis import ListQueueBroker

from taskq_bench.recorder import task_done
from taskq_bench.systems.base import (
    QUEUE,
    SLEEP_S,
    Adapter,
    Kind,
    WorkerSetting,
    aio_round_trip,
    cpu_work,
    redis_url,
    script,
)

broker = ListQueueBroker(url=redis_url(), queue_name=QUEUE)


@broker.task(task_name="noop")
async def noop(intended: float = 0.0) -> None:
    task_done(time.time(), intended)


@broker.task(task_name="io")
async def io(intended: float = 0.0) -> None:
    started = time.time()
    await aio_round_trip()
    task_done(started, intended)


@broker.task(task_name="cpu")
async def cpu(intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


@broker.task(task_name="sleep")
async def sleep(intended: float = 0.0) -> None:
    started = time.time()
    await asyncio.sleep(SLEEP_S)
    task_done(started, intended)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "cpu": cpu, "sleep": sleep}


class TaskiqAdapter(Adapter):
    name = "taskiq"
    distribution = "taskiq"
    sync_api = False
    async_api = True
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 100),)
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 100), WorkerSetting(2, 20))
    default_concurrency = 100
    # `taskiq worker`: --workers 2, --max-async-tasks 100 (one process: --workers 1)
    default_one = WorkerSetting(1, 100)
    default_two = WorkerSetting(2, 100)
    producer_note = "kiq: one LPUSH per task"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._broker: ListQueueBroker | None = None

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        return [
            [script(python, "taskiq"), "worker", "taskq_bench.systems.taskiq:broker", "--workers",
             str(setting.processes), "--max-async-tasks", str(setting.concurrency), "--log-level", "WARNING"],
        ]  # fmt: skip

    async def aopen(self) -> None:
        await broker.startup()

    async def aclose(self) -> None:
        await broker.shutdown()

    async def asend(self, kind: Kind, intended: float) -> None:
        await TASKS[kind].kiq(intended)


ADAPTER = TaskiqAdapter
