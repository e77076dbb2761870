"""arq: ``ArqRedis.enqueue_job`` and the ``arq`` worker command.

* producer: ``await pool.enqueue_job("noop", t)`` on ``arq.create_pool`` (arq has no bulk
  enqueue API);
* worker: ``arq taskq_bench.systems.arq.WorkerSettings --custom-log-dict
  taskq_bench.systems.arq.LOG_CONFIG``, one command per process (arq has no process pool);
  ``max_jobs`` (concurrent jobs per process) comes from ``BENCH_CONCURRENCY``;
* ``poll_delay`` is lowered from arq's default 0.5 s to 0.01 s: arq polls its queue (a
  sorted set) and sleeps ``poll_delay`` between polls, so the default would add up to
  500 ms to every pickup; 10 ms is the fastest setting that does not spin;
* the log level is WARNING (arq's default INFO logs two lines per job).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from taskq_bench.recorder import task_done
from taskq_bench.systems.base import SLEEP_S, Adapter, Kind, WorkerSetting, aio_round_trip, cpu_work, redis_url, script

CONCURRENCY_ENV = "BENCH_CONCURRENCY"
POLL_DELAY_S = 0.01


async def noop(ctx: dict[str, Any], intended: float = 0.0) -> None:
    task_done(time.time(), intended)


async def io(ctx: dict[str, Any], intended: float = 0.0) -> None:
    started = time.time()
    await aio_round_trip()
    task_done(started, intended)


async def cpu(ctx: dict[str, Any], intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


async def sleep(ctx: dict[str, Any], intended: float = 0.0) -> None:
    started = time.time()
    await asyncio.sleep(SLEEP_S)
    task_done(started, intended)


class WorkerSettings:
    """What ``arq taskq_bench.systems.arq.WorkerSettings`` runs."""

    functions: ClassVar[list[Any]] = [noop, io, cpu, sleep]
    redis_settings = RedisSettings.from_dsn(redis_url())
    max_jobs = int(os.environ.get(CONCURRENCY_ENV, "100"))
    poll_delay = POLL_DELAY_S


LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"level": "WARNING", "class": "logging.StreamHandler"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}


class ArqAdapter(Adapter):
    name = "arq"
    distribution = "arq"
    sync_api = False
    async_api = True
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 100),)
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 100), WorkerSetting(2, 20))
    default_concurrency = 100
    # arq's Worker: max_jobs=10, one process per `arq` command
    default_one = WorkerSetting(1, 10)
    default_two = WorkerSetting(2, 10)
    producer_note = "enqueue_job: WATCH and EXISTS, then one MULTI/EXEC (job key, queue ZADD) per task"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._pool: ArqRedis | None = None

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        argv = [script(python, "arq"), "taskq_bench.systems.arq.WorkerSettings",
                "--custom-log-dict", "taskq_bench.systems.arq.LOG_CONFIG"]  # fmt: skip
        return [argv for _ in range(setting.processes)]

    def worker_env(self, setting: WorkerSetting) -> Mapping[str, str]:
        return {CONCURRENCY_ENV: str(setting.concurrency)}

    async def aopen(self) -> None:
        self._pool = await create_pool(RedisSettings.from_dsn(self.url))

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    async def asend(self, kind: Kind, intended: float) -> None:
        assert self._pool is not None
        await self._pool.enqueue_job(kind, intended)


ADAPTER = ArqAdapter
