"""RQ: ``Queue.enqueue`` / ``Queue.enqueue_many`` and the ``rq worker`` command.

* producer: ``queue.enqueue(noop, t)`` (single); ``queue.enqueue_many([Queue.prepare_data(…)])``
  (bulk: one Redis pipeline);
* worker: ``rq worker --url URL --quiet bench``, one command per process (RQ runs one job
  at a time per worker). Two variants are measured: RQ's default ``Worker``, which forks
  a "work horse" child per job (isolation, at a price), and ``--worker-class
  rq.worker.SimpleWorker``, which runs jobs in the worker process itself;
* the default ``Worker``'s horse exits right after its job, so its stamps are written
  inside the task (``BENCH_RECORD=direct``) instead of by the recorder's flush thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

import redis
from rq import Queue

from taskq_bench.recorder import MODE_ENV, task_done
from taskq_bench.systems.base import QUEUE, SLEEP_S, Adapter, Kind, WorkerSetting, cpu_work, io_round_trip, script

SIMPLE = "SimpleWorker"
FORKING = "Worker"


def noop(intended: float = 0.0) -> None:
    task_done(time.time(), intended)


def io(intended: float = 0.0) -> None:
    started = time.time()
    io_round_trip()
    task_done(started, intended)


def cpu(intended: float = 0.0) -> None:
    started = time.time()
    cpu_work()
    task_done(started, intended)


def sleep(intended: float = 0.0) -> None:
    started = time.time()
    time.sleep(SLEEP_S)
    task_done(started, intended)


TASKS = {"noop": noop, "io": io, "cpu": cpu, "sleep": sleep}


class RQAdapter(Adapter):
    name = "rq"
    distribution = "rq"
    bulk_api = "Queue.enqueue_many"
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 1, FORKING), WorkerSetting(1, 1, SIMPLE))
    two_core: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(2, 1, FORKING), WorkerSetting(2, 1, SIMPLE))
    # `rq worker`: the forking Worker, one job at a time
    default_one = WorkerSetting(1, 1, FORKING)
    default_two = WorkerSetting(2, 1, FORKING)
    producer_note = "Queue.enqueue: one Redis pipeline per task (job hash and queue RPUSH)"

    def grid_setting(self, processes: int, concurrency: int) -> WorkerSetting | str:
        if concurrency != 1:
            return "RQ runs one job at a time per worker process"
        return WorkerSetting(processes, 1, SIMPLE)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._queue: Queue | None = None

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        argv = [script(python, "rq"), "worker", "--url", self.url, "--quiet"]
        if setting.variant == SIMPLE:
            argv += ["--worker-class", "rq.worker.SimpleWorker"]
        return [[*argv, QUEUE] for _ in range(setting.processes)]

    def worker_env(self, setting: WorkerSetting) -> Mapping[str, str]:
        return {MODE_ENV: "buffered" if setting.variant == SIMPLE else "direct"}

    def scaling_setting(self, processes: int, concurrency: int) -> WorkerSetting:
        return WorkerSetting(processes, 1, SIMPLE)

    def open(self) -> None:
        self._queue = Queue(QUEUE, connection=redis.Redis.from_url(self.url))

    def close(self) -> None:
        if self._queue is not None:
            self._queue.connection.close()

    def send(self, kind: Kind, intended: float) -> None:
        assert self._queue is not None
        self._queue.enqueue(TASKS[kind], intended)

    def send_bulk(self, kind: Kind, count: int) -> None:
        assert self._queue is not None
        self._queue.enqueue_many([Queue.prepare_data(TASKS[kind], (0.0,)) for _ in range(count)])


ADAPTER = RQAdapter
