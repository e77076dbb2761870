"""The worker: claim → run → extend → complete/fail, on asyncio.

One worker process runs up to ``concurrency`` tasks at once. Async task functions are
awaited on the worker's loop; sync ones run in a thread pool (with the task's context
variables). Around the run loop, four small loops keep the promises described in
docs/ARCHITECTURE.md ("Claim, leases, and what happens when a worker dies", "The worker"):

* **claim** (``_claim_loop``): leases tasks in batches sized to the free slots, from the
  worker's queues in affinity order; idles on a pub/sub wake-up (no busy polling).
* **flush** (``_flush_loop``): sends finished tasks' completions and failures in one
  pipeline per batch ("group commit"): one round trip serves many tasks.
* **heartbeat** (``_heartbeat_loop``): extends the leases of every task held, learns of
  cancellations and lost leases, and refreshes the worker's registration.
* **maintenance** (``_maintenance_loop``): the reaper (expired leases back to queued, or
  dead) and the promoter (due scheduled tasks to queued). Every worker runs both; the
  scripts are idempotent and atomic, so many workers doing it at once is safe.

Shutdown: stop claiming; let running tasks finish within ``grace_s``; then cancel async
ones and release every lease still held straight back to queued (no attempt spent, no
wait for a lease to expire). A second signal skips the grace period.

Timeouts differ by kind: an async task past ``timeout_s`` is cancelled; a sync task
cannot be interrupted, so its attempt is failed at once and whatever its thread returns
later is ignored (the thread stays busy until the function returns).

Running a task and recording its outcome live in :mod:`taskq.execution`, the heartbeat and
maintenance loops in :mod:`taskq.upkeep` (both mixed into :class:`Worker`); what a task sees
of itself and the queue selection in :mod:`taskq.worker_context`. This module keeps the
loops, the shutdown and the ways to run a worker (foreground with signals, background thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import redis.asyncio as aioredis

from taskq.connection import async_client, wait_for_server, warn_if_evicting, worker_socket_timeout_s
from taskq.errors import (
    InvalidOption,
    LeaseLost,
    ServerUnavailable,
)
from taskq.execution import TaskExecution, _Held
from taskq.executor import AsyncExecutor
from taskq.handoff import HandOff, registration_slots
from taskq.ops import MAX_BATCH, ClaimedTask, Completion, Failure, Operations
from taskq.registry import TaskDef
from taskq.shards import rated_queues, selection_flow
from taskq.task import check_positive_s
from taskq.ticker import ScheduleTicker
from taskq.upkeep import TRY_AGAIN, WorkerUpkeep, cancel_and_wait
from taskq.wake import WakeListener
from taskq.worker_context import QueueSelection, TaskContext, check_heartbeat_s, current_task
from taskq.worker_defaults import default_concurrency, loop_factory

log = logging.getLogger("taskq.worker")

# ---------------------------------------------------------------------------
# The worker


class Worker(HandOff, TaskExecution, WorkerUpkeep, ScheduleTicker):
    """Runs the tasks registered on ``app`` (a TaskQueue or AsyncTaskQueue).

    ``queues``: names (ordered affinity), a ``{name: weight}`` mapping, or a spec string
    ``"emails,default"`` / ``"emails=3,default=1"``; default: the app's default queue.
    ``concurrency``: tasks run at once; default :func:`default_concurrency` (100 when every
    registered task is ``async def``, else 10).
    """

    def __init__(
        self,
        app: Any,
        *,
        queues: str | Sequence[str] | Mapping[str, int] | None = None,
        concurrency: int | None = None,
        lease_s: float = 30.0,
        heartbeat_s: float | None = None,
        maintenance_s: float = 1.0,
        idle_poll_s: float = 1.0,
        grace_s: float = 10.0,
        threads: int | None = None,
        worker_id: str | None = None,
    ) -> None:
        if concurrency is None:
            concurrency = default_concurrency(app.registry.values())
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidOption(f"concurrency must be an integer >= 1, got {concurrency!r}")
        for name, value in (("lease_s", lease_s), ("maintenance_s", maintenance_s), ("idle_poll_s", idle_poll_s)):
            check_positive_s(name, value)
        self.url: str = app.url
        self.ops: Operations = app.ops
        self.registry: dict[str, TaskDef] = app.registry
        if queues is not None and not isinstance(queues, (str, Sequence, Mapping)):
            raise InvalidOption(f"queues must be names, a {{name: weight}} mapping or a spec string, got {queues!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InvalidOption(f"threads must be an integer >= 1, got {threads!r}")
        self.selection = QueueSelection.parse(queues if queues is not None else default_queues(app))
        self.concurrency = concurrency
        self.lease_ms = int(lease_s * 1000)
        self.heartbeat_s = check_heartbeat_s(lease_s, heartbeat_s)
        #: Every Redis call of this worker fails after this long on a connection that went quiet.
        self.socket_timeout_s = worker_socket_timeout_s(lease_s)
        # A claim round that has not come back (or kept failing) for this long is a stall: the
        # heartbeat stops refreshing the registration, so the worker shows as stale, not alive.
        self._stall_s = 2 * self.socket_timeout_s + self.heartbeat_s
        self._claim_progress_at = time.monotonic()
        self._claim_waiting = False
        self.maintenance_s = maintenance_s
        self.idle_poll_s = idle_poll_s
        self._handoff_init(idle_poll_s)
        self.grace_s = grace_s
        if worker_id is not None and (
            not isinstance(worker_id, str) or not worker_id or any(c.isspace() for c in worker_id)
        ):
            raise InvalidOption(f"worker_id must be a non-empty string without whitespace, got {worker_id!r}")
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.started_ms = int(time.time() * 1000)  # this machine's clock until the first heartbeat, then the server's
        self._clock_offset_ms: int | None = None  # server clock minus ours, from the last heartbeat
        self.processed = 0
        self.failed = 0
        self._threads = ThreadPoolExecutor(max_workers=threads or concurrency, thread_name_prefix="taskq-task")
        self._thread_calls: set[Future[Any]] = set()  # sync task calls whose function has not returned
        self._refill_at = max(1, concurrency // 4)
        self._rng = random.Random()
        self._held: dict[str, _Held] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._pending: list[tuple[Completion | Failure, _Held]] = []
        self._stopping = False
        self._grace_override: float | None = None
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # asyncio primitives are made inside run(), on the loop that runs the worker
        self._stop_event: asyncio.Event
        self._work_event: asyncio.Event
        self._slot_event: asyncio.Event
        self._flush_event: asyncio.Event
        self._flush_lock: asyncio.Lock
        self._redis: aioredis.Redis
        self._exec: AsyncExecutor

    # -- public ----------------------------------------------------------------------

    @property
    def busy_threads(self) -> int:
        """Sync task functions still running in their threads (after shutdown: abandoned)."""
        return len(self._thread_calls)

    @property
    def running_ids(self) -> list[str]:
        return [h.task.id for h in self._held.values() if h.runner is not None and not h.runner.done()]

    async def run(self) -> None:
        """Run until :meth:`request_stop` (or a signal, under :func:`run_worker`)."""
        self._loop = asyncio.get_running_loop()
        self._claim_progress(waiting=False)
        self._stop_event = asyncio.Event()
        self._work_event = asyncio.Event()
        self._slot_event = asyncio.Event()
        self._flush_event = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._redis = async_client(self.url, self.socket_timeout_s)
        self._exec = AsyncExecutor(self._redis, self.url)
        wake = WakeListener(self._redis, [], self._work_event.set)
        helpers: list[asyncio.Task[None]] = []
        try:
            # sharded queues (taskq.shards): claim from each one's sub-queues too
            self.selection = await self._exec.drive(
                selection_flow(self.ops, self.selection, rated_queues(self.registry))
            )
            wake.channels = [self.ops.queue_keys(q).wake for q in self.selection.queues]
            wake.routes = self._handoff_routes()
            await wake.start()
            await warn_if_evicting(self._redis, log)
            await self._heartbeat()
            await self._publish_task_settings()  # rate limits in place before the first claim
            helpers = [
                asyncio.create_task(wake.run(), name="taskq-listen"),
                asyncio.create_task(self._flush_loop(), name="taskq-flush"),
                asyncio.create_task(self._heartbeat_loop(), name="taskq-heartbeat"),
                asyncio.create_task(self._maintenance_loop(), name="taskq-maintenance"),
                asyncio.create_task(self._schedule_loop(), name="taskq-schedules"),
            ]
            log.info("worker %s serving %s, concurrency %d", self.id, ",".join(self.selection.queues), self.concurrency)
            self._started.set()
            await self._claim_loop()
            await self._drain()
        finally:
            await cancel_and_wait(helpers)
            with contextlib.suppress(Exception):
                await self._exec.run(self.ops.worker_gone(self.id))
            await wake.aclose()
            await self._redis.aclose()
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._stopped.set()
            log.info("worker %s stopped: %d processed, %d failed", self.id, self.processed, self.failed)

    def request_stop(self, grace_s: float | None = None) -> None:
        """Stop claiming and shut down gracefully; thread-safe. A second call (or
        ``grace_s=0``) skips the rest of the grace period."""
        if self._loop is None:
            self._stopping = True
            return

        def stop() -> None:
            if self._stopping:
                self._grace_override = 0.0
            elif grace_s is not None:
                self._grace_override = grace_s
            self._stopping = True
            self._stop_event.set()
            self._slot_event.set()
            self._work_event.set()

        if threading.current_thread() is threading.main_thread() and _loop_is(self._loop):
            stop()
        else:
            self._loop.call_soon_threadsafe(stop)

    # -- claiming ------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._running)
            if free <= 0 or (self._running and free < self._refill_at):
                self._slot_event.clear()
                self._claim_progress(waiting=True)
                await self._slot_event.wait()
                self._claim_progress(waiting=False)
                continue
            self._work_event.clear()
            try:
                async with asyncio.timeout(self._stall_s):  # the socket timeout's backstop
                    claimed, next_due_ms, emptied = await self._claim(free)
            except (*TRY_AGAIN, TimeoutError) as exc:  # a full Redis too: no claim until it has room
                log.warning("claim failed, retrying: %s", str(exc) or f"no reply within {self._stall_s:.1f}s")
                await self._sleep(min(self.idle_poll_s, 1.0))
                continue
            self._claim_progress(waiting=False)
            for task in claimed:
                self._start(task)
            if claimed and not emptied:
                continue
            # Every queue gave less than asked, so each was empty after the claim: the next
            # task to arrive publishes a wake-up (set since the clear above, if it came
            # already). Claiming again now would only come back empty: one round trip per
            # task at low load, not two.
            self._claim_progress(waiting=True)
            await self._wait_for_work(next_due_ms)
            self._claim_progress(waiting=False)

    async def _claim(self, free: int) -> tuple[list[ClaimedTask], int, bool]:
        """Claim up to ``free`` tasks; also the earliest due time still scheduled (or -1),
        and whether every queue asked gave fewer than asked (all left empty)."""
        claimed: list[ClaimedTask] = []
        next_due = -1
        emptied = True
        short: list[str] = []  # left empty, so registered for the hand-off (taskq.handoff)
        order = self.selection.claim_order(self._rng)
        slots = registration_slots(free, len(order))
        for queue in order:
            want = min(free - len(claimed), MAX_BATCH)
            if want <= 0:
                emptied = False  # not asked: it may hold more
                break
            plan = self.ops.claim_batch(queue, want, self.lease_ms, self.id, self._handoff_ms, slots)
            got, due = await self._exec.run(plan)
            claimed += got
            emptied = emptied and len(got) < want
            short += [queue] if len(got) < want else []
            self._handoff_registered(queue, min(slots, want - len(got)))
            if due >= 0 and (next_due < 0 or due < next_due):
                next_due = due
        if short and len(self._running) + len(claimed) >= self.concurrency:  # full now (a later queue,
            await self._handoff_unregister(short)  # or hand-offs that came meanwhile): registered for nothing
        return self._handoff_fit(claimed), next_due, emptied

    async def _wait_for_work(self, next_due_ms: int) -> None:
        timeout = self.idle_poll_s
        if next_due_ms >= 0:
            timeout = min(timeout, max(0.0, next_due_ms / 1000 - time.time()) + 0.001)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._work_event.wait()

    # -- flushing outcomes -----------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_event.wait()
            self._flush_event.clear()
            await self._flush()

    async def _flush(self) -> None:
        async with self._flush_lock:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    replies = await self._exec.run(self.ops.finish([command for command, _ in batch]))
                except TRY_AGAIN as exc:
                    log.warning("could not record %d outcomes, retrying: %s", len(batch), exc)
                    self._pending[:0] = batch
                    await self._sleep(0.2)
                    if self._stop_event.is_set() and self._grace_override == 0.0:
                        return
                    continue
                # Redis full, or (ServerUnavailable inline) a cluster slot moving: kept and written again
                full = [item for item, reply in zip(batch, replies, strict=True) if isinstance(reply, TRY_AGAIN)]
                for (command, held), reply in zip(batch, replies, strict=True):
                    if isinstance(reply, TRY_AGAIN):
                        continue  # kept, lease and all, and written again below
                    if self._held.get(held.task.id) is held:
                        del self._held[held.task.id]
                    if isinstance(reply, LeaseLost):
                        log.warning("%s (another attempt owns it)", reply)
                    elif isinstance(reply, Exception):
                        log.error("task %s: recording its outcome failed: %s", held.task.id, reply)
                    elif isinstance(command, Failure):
                        self._log_failure(command, held, reply)
                if full:
                    log.warning("Redis is full (or a Cluster slot moving): %d outcomes wait to be written", len(full))
                    self._pending[:0] = full
                    await self._sleep(0.5)
                    if self._stop_event.is_set() and self._grace_override == 0.0:
                        return

    # -- shutdown --------------------------------------------------------------------

    async def _drain(self) -> None:
        """Graceful end: wait for running tasks (up to the grace period), record their
        outcomes, then hand back every lease still held."""
        grace = self.grace_s if self._grace_override is None else self._grace_override
        deadline = time.monotonic() + grace
        await self._handoff_leave()
        while self._running and time.monotonic() < deadline:
            if self._grace_override == 0.0:
                break
            self._slot_event.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(0.1, max(0.0, deadline - time.monotonic()))):
                    await self._slot_event.wait()
        await self._flush()
        leftover = [h for h in self._held.values() if h.runner is not None and not h.runner.done()]
        for held in leftover:
            held.released = True
            if held.runner is not None:
                held.runner.cancel()
        by_queue: dict[str, list[tuple[str, str]]] = {}
        for held in leftover:
            by_queue.setdefault(held.task.queue, []).append((held.task.id, held.task.token))
        for queue, leases in by_queue.items():
            try:
                released = await self._exec.run(self.ops.release(queue, leases))
                log.info("released %d running tasks of %s back to the queue", released, queue)
            except TRY_AGAIN as exc:
                log.error("could not release %d tasks (their leases will expire): %s", len(leases), exc)
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._flush()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()


def default_queues(app: Any) -> list[str]:
    """The queues a worker serves when none are named: those of the app's registered tasks,
    in registration order, then the app's default queue."""
    queues = [d.queue for d in app.registry.values()] + [app.default_queue]
    return list(dict.fromkeys(queues))


def _loop_is(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


# ---------------------------------------------------------------------------
# Running a worker: in the foreground with signals, or in a background thread


def run_worker(worker: Worker, *, install_signals: bool = True, event_loop: str = "asyncio") -> None:
    """Run ``worker`` in this thread until SIGTERM/SIGINT (a second one exits now). A Redis
    that is down at start is waited for (retried with backoff, said in one log line).
    ``event_loop``: see :func:`loop_factory` (``taskq worker`` passes ``auto``)."""
    factory = loop_factory(event_loop)
    # What is loaded by now (the app, taskq, redis-py, the command line) lives as long as the
    # process: frozen, a full collection no longer walks it (each took 50-70 ms of the loop's
    # CPU under load, a pause every task started in the meantime waited through).
    gc.collect()
    gc.freeze()

    async def main() -> None:
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.request_stop)
        if await wait_for_server(worker.url, lambda: worker._stopping, log):
            await worker.run()

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


class BackgroundWorker:
    """A worker running in a thread of its own, e.g. inside a notebook kernel.

    >>> w = tq.start_worker(queues=["default"], concurrency=4)   # doctest: +SKIP
    >>> w.stop()                                                 # doctest: +SKIP
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"taskq-worker-{worker.id}", daemon=True)

    def start(self, timeout_s: float = 10.0) -> BackgroundWorker:
        self._thread.start()
        if not self.worker._started.wait(timeout_s) and self.error is None:
            raise ServerUnavailable(f"worker did not start within {timeout_s}s")
        if self.error is not None:
            raise self.error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self.worker.run())
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()/stop()
            self.error = exc
            self.worker._started.set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, grace_s: float | None = None, timeout_s: float = 30.0) -> None:
        """Stop gracefully (running tasks get ``grace_s``, default the worker's), and wait."""
        self.worker.request_stop(grace_s)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"worker {self.worker.id} did not stop within {timeout_s}s")

    def __enter__(self) -> BackgroundWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_background_worker(app: Any, **settings: Any) -> BackgroundWorker:
    return BackgroundWorker(Worker(app, **settings)).start()


def load_app(path: str) -> Any:
    """Import ``module:attribute`` and return the TaskQueue it names."""
    import importlib
    import sys

    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidOption(f"APP must look like 'module:attribute' (e.g. myapp.tasks:tq), got {path!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not hasattr(obj, "registry") or not hasattr(obj, "ops"):
        raise InvalidOption(f"{path} is a {type(obj).__name__}, not a taskq TaskQueue")
    return obj


__all__ = [
    "BackgroundWorker",
    "QueueSelection",
    "TaskContext",
    "Worker",
    "current_task",
    "default_concurrency",
    "load_app",
    "loop_factory",
    "run_worker",
    "start_background_worker",
]
