"""SAQ: ``Queue.enqueue`` and the ``saq`` worker command.

* producer: ``await queue.enqueue("noop", intended=t)`` on ``saq.Queue.from_url`` (SAQ has
  no bulk enqueue: ``Queue.map`` enqueues many but also waits for their results);
* worker: ``saq taskq_bench.systems.saq.settings --workers P``; ``concurrency`` (jobs run at
  once per process, each slot blocking on its own dequeue) comes from ``BENCH_CONCURRENCY``;
  SAQ's defaults otherwise (its log level is WARNING without ``-v``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from saq import Queue

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

CONCURRENCY_ENV = "BENCH_CONCURRENCY"


async def noop(ctx: dict[str, Any], *, intended: float = 0.0) -> None:
    task_done(time.time(), intended)


async def io(ctx: dict[str, Any], *, intended: float = 0.0) -> None:
    started = time.time()
    await aio_round_trip()
    task_done(started, intended)


async def cpu(ctx: dict[str, Any], *, intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


async def sleep(ctx: dict[str, Any], *, intended: float = 0.0) -> None:
    started = time.time()
    await asyncio.sleep(SLEEP_S)
    task_done(started, intended)


settings: dict[str, Any] = {
    "queue": Queue.from_url(redis_url(), name=QUEUE),
    "functions": [noop, io, cpu, sleep],
    "concurrency": int(os.environ.get(CONCURRENCY_ENV, "50")),
}


class SaqAdapter(Adapter):
    name = "saq"
    distribution = "saq"
    sync_api = False
    async_api = True
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 50),)
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 50), WorkerSetting(2, 10))
    default_concurrency = 50
    # saq's Worker: concurrency=10; `saq … --workers 1`
    default_one = WorkerSetting(1, 10)
    default_two = WorkerSetting(2, 10)
    producer_note = "Queue.enqueue: one Lua script call per task"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._queue: Queue | None = None

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        return [[script(python, "saq"), "taskq_bench.systems.saq.settings", "--workers", str(setting.processes)]]

    def worker_env(self, setting: WorkerSetting) -> Mapping[str, str]:
        return {CONCURRENCY_ENV: str(setting.concurrency)}

    async def aopen(self) -> None:
        self._queue = Queue.from_url(self.url, name=QUEUE)
        await self._queue.connect()

    async def aclose(self) -> None:
        if self._queue is not None:
            await self._queue.disconnect()

    async def asend(self, kind: Kind, intended: float) -> None:
        assert self._queue is not None
        await self._queue.enqueue(kind, intended=intended)


ADAPTER = SaqAdapter
