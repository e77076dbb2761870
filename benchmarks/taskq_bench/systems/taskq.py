"""taskq itself, driven like the peers: its public producer API and its own worker command.

* producer: ``enqueue("noop", [t], force=True)`` by name on a blocking :class:`taskq.TaskQueue`
  of its own (single), ``enqueue_many([...])`` (bulk, one pipelined ``enqueue.lua`` call per
  1,000), and ``AsyncTaskQueue.enqueue`` for the open-loop runs (why by name: ``send``);
* worker: ``taskq worker taskq_bench.systems.taskq:tq --queues bench --concurrency C
  --processes P --log-level warning`` (``--processes 2`` is taskq's supervised pool);
* defaults kept: at-least-once leases (30 s), retries, the event stream and telemetry on;
* tasks are ``async def`` (awaited on the worker's loop; sync tasks would go to threads); the
  I/O task makes its Redis round trip through ``redis.asyncio``;
* defaults: ``taskq worker``'s own: ``--concurrency`` 100 (its default when every task is
  ``async def``, as these are), one process, and ``--loop auto`` (uvloop, installed with
  ``taskq[speed]``, else asyncio's loop); the grid varies ``--concurrency`` with ``--processes``
  1 and 2, on the same loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import ClassVar

import taskq
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

tq = taskq.TaskQueue(redis_url())


@tq.task(queue=QUEUE)
async def noop(intended: float = 0.0) -> None:
    task_done(time.time(), intended)


@tq.task(queue=QUEUE)
async def io(intended: float = 0.0) -> None:
    started = time.time()
    await aio_round_trip()
    task_done(started, intended)


@tq.task(queue=QUEUE)
async def cpu(intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


@tq.task(queue=QUEUE)
async def sleep(intended: float = 0.0) -> None:
    started = time.time()
    await asyncio.sleep(SLEEP_S)
    task_done(started, intended)


TASKS = {"noop": noop, "io": io, "cpu": cpu, "sleep": sleep}


class TaskqAdapter(Adapter):
    name = "taskq"
    distribution = "taskq"
    sync_api = True
    async_api = True
    bulk_api = "TaskQueue.enqueue_many"
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 200),)
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 200), WorkerSetting(2, 50))
    default_concurrency = 200
    # `taskq worker`: --concurrency 100 for async-only apps, --processes 1 (taskq/cli/worker.py)
    default_one = WorkerSetting(1, 100)
    default_two = WorkerSetting(2, 100)
    producer_note = ("blocking client: one enqueue script call per task; async client (open loop): concurrent "
                     "sends are batched into one script call (a feature of taskq's async client)")  # fmt: skip

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._sync: taskq.TaskQueue | None = None
        self._async: taskq.AsyncTaskQueue | None = None

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        return [
            [script(python, "taskq"), "worker", "taskq_bench.systems.taskq:tq", "--queues", QUEUE,
             "--concurrency", str(setting.concurrency), "--processes", str(setting.processes),
             "--log-level", "warning"],
        ]  # fmt: skip

    def worker_env(self, setting: WorkerSetting) -> Mapping[str, str]:
        return {"TASKQ_REDIS_URL": self.url}

    def open(self) -> None:
        self._sync = taskq.TaskQueue(self.url)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()

    # The producers enqueue by name, as the peers' do, often before any worker has started
    # (drain queues its tasks first): so force=True, not the published registry.
    def send(self, kind: Kind, intended: float) -> None:
        assert self._sync is not None
        self._sync.enqueue(TASKS[kind].name, [intended], queue=QUEUE, force=True)

    def send_bulk(self, kind: Kind, count: int) -> None:
        assert self._sync is not None
        self._sync.enqueue_many([{"name": TASKS[kind].name, "args": [0.0], "queue": QUEUE, "force": True}] * count)

    async def aopen(self) -> None:
        self._async = taskq.AsyncTaskQueue(self.url)

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()

    async def asend(self, kind: Kind, intended: float) -> None:
        assert self._async is not None
        await self._async.enqueue(TASKS[kind].name, [intended], queue=QUEUE, force=True)


ADAPTER = TaskqAdapter
