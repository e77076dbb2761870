"""What every system adapter provides, and the task bodies they share.

An adapter module (``taskq_bench.systems.<name>``) defines, at module level, its system's
app and four tasks (``noop``, ``io``, ``cpu``, ``sleep``), each taking the intended send time
(0.0 for drain runs) and ending with :func:`taskq_bench.recorder.task_done`; and an
``ADAPTER`` class, a subclass of :class:`Adapter`, that enqueues through the system's
public API and says how to start the system's own worker command. Adapter modules import
their peer library at the top, so they are only imported in a Python that has it
(``benchmarks/setup_peers.sh``); the harness talks to them through
``python -m taskq_bench.system_run``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import redis

from taskq_bench.recorder import URL_ENV

Kind = Literal["noop", "io", "cpu", "sleep"]
#: What a drain queues: one kind of task, or ``mix`` (cpu and sleep alternating).
Workload = Literal["noop", "io", "cpu", "sleep", "mix"]
#: The key the I/O task's one Redis round trip touches (``INCR``): apart from every system's keys.
IO_KEY = "bench:io"
#: The queue every adapter uses (systems that need a name).
QUEUE = "bench"
#: CPU-bound task: this many loop iterations (1-2 ms of pure Python on the reference machine).
CPU_ITERATIONS = 20_000
#: I/O-bound task: sleeps this long (time.sleep in sync systems, asyncio.sleep in async ones).
SLEEP_S = 0.01
#: The repository (results, logs and the peers' virtualenvs are found from here).
ROOT = Path(__file__).resolve().parents[3]
#: ``PYTHONPATH`` for processes the harness starts (peers' interpreters, workers, producers):
#: the harness's own source, so a peer's virtualenv imports ``taskq_bench`` from this checkout.
HARNESS_PATH = str(Path(__file__).resolve().parents[2])


def cpu_work(iterations: int = CPU_ITERATIONS) -> int:
    """Pure-Python CPU work that holds the GIL throughout."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


_io_sync: tuple[int, redis.Redis] | None = None
_io_async: dict[int, Any] = {}


def io_round_trip() -> None:
    """The I/O task's work for threaded and forking systems: one ``INCR`` on a blocking
    redis-py client of this process (one per process; its pool is thread-safe)."""
    global _io_sync
    if _io_sync is None or _io_sync[0] != os.getpid():
        _io_sync = (os.getpid(), redis.Redis.from_url(redis_url()))
    _io_sync[1].incr(IO_KEY)


#: Connections of the I/O task's asyncio client per process: redis-py's default pool size (100
#: since redis-py 6), but a task past it waits for a free one instead of failing with
#: ``MaxConnectionsError`` (at concurrency 200 it did, and the failed attempts were retried).
AIO_MAX_CONNECTIONS = 100


async def aio_round_trip() -> None:
    """The I/O task's work for asyncio systems: one ``INCR`` on a ``redis.asyncio`` client of
    this process and event loop (its pool opens a connection per concurrent task, as needed,
    up to :data:`AIO_MAX_CONNECTIONS`; beyond that a task waits for one)."""
    import redis.asyncio

    key = id(asyncio.get_running_loop())
    client = _io_async.get(key)
    if client is None:
        _io_async.clear()  # an earlier loop's client is never used again
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            redis_url(), max_connections=AIO_MAX_CONNECTIONS, timeout=None
        )
        client = _io_async[key] = redis.asyncio.Redis(connection_pool=pool)
    await client.incr(IO_KEY)


def redis_url() -> str:
    """The URL the harness set for this run (worker processes read it at import)."""
    return os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0")


@dataclass(frozen=True, slots=True)
class WorkerSetting:
    """How the system's workers run: ``processes`` x ``concurrency`` (per process), plus a
    system-specific variant (pool kind, worker class)."""

    processes: int
    concurrency: int
    variant: str = ""

    @property
    def label(self) -> str:
        base = f"{self.processes}p x {self.concurrency}"
        return f"{base} {self.variant}" if self.variant else base


class Adapter:
    """One system under test, with a blocking producer API (:meth:`send`, :meth:`send_bulk`;
    ``sync_api``), an asyncio one (:meth:`asend`, :meth:`asend_bulk`; ``async_api``) or both.
    Closed-loop enqueue runs use the blocking API when there is one (no event-loop cost);
    open-loop runs use the asyncio API when there is one (no thread hop)."""

    name: ClassVar[str]
    #: The distribution whose version is reported.
    distribution: ClassVar[str]
    sync_api: ClassVar[bool] = True
    async_api: ClassVar[bool] = False
    #: The bulk enqueue call used, or None when the system has no bulk API.
    bulk_api: ClassVar[str | None] = None
    #: Settings tried for "1 worker process" and for "the best 2-core setting" (best median wins).
    one_process: ClassVar[tuple[WorkerSetting, ...]]
    two_core: ClassVar[tuple[WorkerSetting, ...]]
    #: The concurrency a process gets in the scaling-vs-processes runs.
    default_concurrency: ClassVar[int] = 1
    #: The system's documented defaults: one worker process, and the same on two cores (its
    #: default process count where that is the CPU count, else two processes of the default).
    default_one: ClassVar[WorkerSetting]
    default_two: ClassVar[WorkerSetting]
    #: What the producer does per call, stated in the report (batching is a feature: labelled).
    producer_note: ClassVar[str] = ""

    def grid_setting(self, processes: int, concurrency: int) -> WorkerSetting | str:
        """The setting for one grid point (``processes`` x ``concurrency`` tasks at once per
        process), or why the system cannot run it (the point is then reported, not dropped)."""
        return WorkerSetting(processes, concurrency)

    def __init__(self, url: str) -> None:
        self.url = url

    # -- workers -------------------------------------------------------------------

    def worker_commands(self, setting: WorkerSetting, python: str) -> list[list[str]]:
        """The command lines that run ``setting`` (one per process for systems whose CLI
        starts a single process)."""
        raise NotImplementedError

    def worker_env(self, setting: WorkerSetting) -> Mapping[str, str]:
        """Extra environment for the worker commands."""
        return {}

    def scaling_setting(self, processes: int, concurrency: int) -> WorkerSetting:
        """The setting for a point of the scaling runs."""
        return WorkerSetting(processes, concurrency)

    # -- producers -----------------------------------------------------------------

    def open(self) -> None:
        """Connect (sync adapters)."""

    def close(self) -> None:
        """Disconnect (sync adapters)."""

    def send(self, kind: Kind, intended: float) -> None:
        """Enqueue one task with the system's single-enqueue API (sync adapters)."""
        raise NotImplementedError

    def send_bulk(self, kind: Kind, count: int) -> None:
        """Enqueue ``count`` tasks in one bulk call (sync adapters with a bulk API)."""
        raise NotImplementedError

    async def aopen(self) -> None:
        """Connect (async adapters)."""

    async def aclose(self) -> None:
        """Disconnect (async adapters)."""

    async def asend(self, kind: Kind, intended: float) -> None:
        """Enqueue one task (async adapters)."""
        raise NotImplementedError

    async def asend_bulk(self, kind: Kind, count: int) -> None:
        """Enqueue ``count`` tasks in one bulk call (async adapters with a bulk API)."""
        raise NotImplementedError


def script(python: str, name: str) -> str:
    """The console script ``name`` installed next to ``python`` (the same virtualenv)."""
    return str(Path(python).parent / name)
