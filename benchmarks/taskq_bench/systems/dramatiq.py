"""Dramatiq with its Redis broker: ``actor.send`` / ``group(...).run()`` and the ``dramatiq`` command.

* producer: ``noop.send(t)`` (single); ``group(noop.message(0.0) for …).run()`` (Dramatiq's
  way to send many at once; the broker still enqueues one message per call);
* worker: ``dramatiq taskq_bench.systems.dramatiq --processes P --threads T --queues bench``
  (Dramatiq's own process pool, T worker threads each); no result backend; retries off for
  the benchmark actors (``max_retries=0``: nothing fails anyway). Dramatiq acks after the
  task (at-least-once), like taskq;
* ``dramatiq_worker_timeout=100`` (environment): an idle Redis consumer polls with a growing
  back-off capped at this many ms (default 1,000), which bounds the pickup delay of a task
  that lands in an idle queue; 100 ms is the documented knob set low, as arq's
  ``poll_delay``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import dramatiq
from dramatiq import group
from dramatiq.brokers.redis import RedisBroker

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

WORKER_TIMEOUT_MS = 100

broker = RedisBroker(url=redis_url())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(intended: float = 0.0) -> None:
    task_done(time.time(), intended)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def io(intended: float = 0.0) -> None:
    started = time.time()
    io_round_trip()
    task_done(started, intended)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def cpu(intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def sleep(intended: float = 0.0) -> None:
    started = time.time()
    time.sleep(SLEEP_S)
    task_done(started, intended)


TASKS: dict[str, Any] = {"noop": noop, "io": io, "cpu": cpu, "sleep": sleep}


class DramatiqAdapter(Adapter):
    name = "dramatiq"
    distribution = "dramatiq"
    bulk_api = "group(...).run()"
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 8), WorkerSetting(1, 1))
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 8), WorkerSetting(2, 1))
    default_concurrency = 8
    # `dramatiq`: --processes = the CPU count, --threads 8
    default_one = WorkerSetting(1, 8)
    default_two = WorkerSetting(2, 8)
    producer_note = "send: one Lua script call per task (the broker's dispatch script)"

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        return [
            [script(python, "dramatiq"), "taskq_bench.systems.dramatiq", "--processes", str(setting.processes),
             "--threads", str(setting.concurrency), "--queues", QUEUE],
        ]  # fmt: skip

    def worker_env(self, setting: WorkerSetting) -> Mapping[str, str]:
        return {"dramatiq_worker_timeout": str(WORKER_TIMEOUT_MS)}

    def send(self, kind: Kind, intended: float) -> None:
        TASKS[kind].send(intended)

    def send_bulk(self, kind: Kind, count: int) -> None:
        group(TASKS[kind].message(0.0) for _ in range(count)).run()


ADAPTER = DramatiqAdapter
