"""The producer API: :class:`TaskQueue` (blocking) and :class:`AsyncTaskQueue` (asyncio).

Both are thin. Each operation is written once, as a *flow*: a generator that yields
plans (:mod:`taskq.ops`) or seconds to sleep, and returns the result. The blocking
client drives flows with a ``redis.Redis``; the async one with ``redis.asyncio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio as aioredis

from taskq.backoff import Backoff
from taskq.errors import (
    InvalidOption,
    ResultTimeout,
    TaskCancelled,
    TaskFailed,
    UnknownTaskName,
)
from taskq.executor import AsyncExecutor, SyncExecutor
from taskq.keys import check_queue_name
from taskq.ops import DEFAULT_EVENTS_MAXLEN, Operations, QueueCounts
from taskq.plan import Flow
from taskq.registry import ENQUEUE_OPTIONS, RegisteredTask, TaskDef, TaskFunction, make_task_def
from taskq.server import ServerInfo, find_server
from taskq.task import (
    DEFAULT_DEAD_TTL_S,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    DEFAULT_RESULT_TTL_S,
    Task,
    TaskPage,
    TaskSpec,
    TaskStatus,
    check_non_negative_int,
    check_positive_s,
    check_priority,
    check_task_name,
)
from taskq.telemetry import DEFAULT_WINDOWS_S, Event, EventReader, Snapshot, SnapshotHint, WorkerSnapshot

if TYPE_CHECKING:
    from taskq.worker import BackgroundWorker

H = TypeVar("H")

BULK_CHUNK = 1000
#: Single enqueues of an AsyncTaskQueue on their way at once (more wait and go out together).
ENQUEUE_SENDERS = 4
#: Longest aging window: queue scores (clock_us + 9 * window_us) must stay below 2^53.
MAX_AGING_S = 30 * 86400
#: How long a client trusts its copy of the published task registry for names it finds there.
REGISTRY_CACHE_S = 2.0
_POLL_START_S = 0.001
_POLL_MAX_S = 0.05


# ---------------------------------------------------------------------------
# Flows: each operation once, independent of sync or async I/O.


def _result_flow(ops: Operations, task_id: str, timeout_s: float | None) -> Flow[Any]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pause = _POLL_START_S
    while True:
        task: Task = yield ops.get(task_id)
        if task.status is TaskStatus.SUCCEEDED:
            return task.result
        if task.status is TaskStatus.DEAD:
            raise TaskFailed(task.id, task.error_type or "", task.error or "", task.traceback or "")
        if task.status is TaskStatus.CANCELLED:
            raise TaskCancelled(f"task {task_id} was cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            raise ResultTimeout(f"task {task_id} is still {task.status.value} after {timeout_s}s")
        wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
        yield wait
        pause = min(pause * 2, _POLL_MAX_S)


def _enqueue_flow(ops: Operations, specs: list[TaskSpec], known: set[str]) -> Flow[list[str]]:
    new_queues = sorted({s.queue for s in specs} - known)
    if new_queues:
        yield ops.register_queues(new_queues)
        known.update(new_queues)
    ids: list[str] = []
    for start in range(0, len(specs), BULK_CHUNK):
        ids += yield ops.enqueue(specs[start : start + BULK_CHUNK])
    return ids


def _dead_list_flow(ops: Operations, queue: str, limit: int, offset: int) -> Flow[list[Task]]:
    ids = yield ops.list_ids(queue, TaskStatus.DEAD, offset, limit)
    if not ids:
        return []
    tasks: list[Task | None] = yield ops.get_many(ids)
    return [t for t in tasks if t is not None]


def _dead_select_flow(
    ops: Operations, queue: str, ids: Iterable[str] | None, name: str | None, error_type: str | None, all_: bool
) -> Flow[list[str] | None]:
    """The dead task ids a re-drive or purge applies to; None means "all of them"."""
    kinds = (ids is not None) + (name is not None or error_type is not None) + bool(all_)
    if kinds != 1:
        raise InvalidOption(
            "choose exactly one way to select dead tasks: ids=[...], a filter (name=... and/or "
            "error_type=...), or all=True"
        )
    if ids is not None:
        return list(ids)
    if name is None and error_type is None:
        return None
    chosen: list[str] = []
    offset = 0
    while True:
        batch: list[Task] = yield from _dead_list_flow(ops, queue, BULK_CHUNK, offset)
        chosen += [
            t.id
            for t in batch
            if (name is None or t.name == name) and (error_type is None or t.error_type == error_type)
        ]
        if len(batch) < BULK_CHUNK:
            return chosen
        offset += BULK_CHUNK


def _redrive_flow(
    ops: Operations, queue: str, ids: Iterable[str] | None, name: str | None, error_type: str | None, all_: bool
) -> Flow[int]:
    chosen = yield from _dead_select_flow(ops, queue, ids, name, error_type, all_)
    if chosen is None:
        total = 0
        while True:
            moved: list[str] = yield ops.redrive(queue, None, BULK_CHUNK)
            total += len(moved)
            if len(moved) < BULK_CHUNK:
                return total
    total = 0
    for start in range(0, len(chosen), BULK_CHUNK):
        moved = yield ops.redrive(queue, chosen[start : start + BULK_CHUNK])
        total += len(moved)
    return total


def _purge_flow(
    ops: Operations, queue: str, ids: Iterable[str] | None, name: str | None, error_type: str | None, all_: bool
) -> Flow[int]:
    chosen = yield from _dead_select_flow(ops, queue, ids, name, error_type, all_)
    total = 0
    if chosen is None:
        while True:
            n: int = yield ops.purge_dead(queue, None, BULK_CHUNK)
            total += n
            if n < BULK_CHUNK:
                return total
    for start in range(0, len(chosen), BULK_CHUNK):
        total += yield ops.purge_dead(queue, chosen[start : start + BULK_CHUNK])
    return total


def _stats_flow(ops: Operations, queues: Sequence[str] | None) -> Flow[list[QueueCounts]]:
    names: list[str] = list(queues) if queues is not None else (yield ops.queues())
    if not names:
        return []
    for q in names:
        check_queue_name(q)
    counts: list[QueueCounts] = yield ops.counts(names)
    return counts


# ---------------------------------------------------------------------------
# The shared part of both clients: settings, registry, validation.


class _Base:
    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "taskq",
        default_queue: str = DEFAULT_QUEUE,
        events: bool = True,
        events_maxlen: int = DEFAULT_EVENTS_MAXLEN,
        events_sample: int = 1,
        telemetry: bool = True,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        result_ttl_s: int = DEFAULT_RESULT_TTL_S,
        dead_ttl_s: int = DEFAULT_DEAD_TTL_S,
        embedded: bool = True,
    ) -> None:
        check_queue_name(default_queue)
        if max_payload_bytes < 1:
            raise InvalidOption(f"max_payload_bytes must be >= 1, got {max_payload_bytes}")
        check_non_negative_int("result_ttl_s", result_ttl_s, upper=10 * 365 * 86400)
        if check_non_negative_int("dead_ttl_s", dead_ttl_s, upper=10 * 365 * 86400) < 1:
            raise InvalidOption("dead_ttl_s must be >= 1 s: dead tasks are kept for inspection and re-drive")
        if isinstance(events_sample, bool) or not isinstance(events_sample, int) or events_sample < 1:
            raise InvalidOption(f"events_sample must be an integer >= 1 (keep 1 task in N), got {events_sample!r}")
        #: Which server this client found or started (password redacted).
        self.server_info: ServerInfo
        self.url, self.server_info = find_server(url, embedded=embedded)
        self.default_queue = default_queue
        self.max_payload_bytes = max_payload_bytes
        self.result_ttl_s = result_ttl_s
        self.ops = Operations(
            prefix=prefix,
            events_maxlen=events_maxlen if events else 0,
            dead_ttl_s=dead_ttl_s,
            events_sample=events_sample,
            telemetry=telemetry,
        )
        self.registry: dict[str, TaskDef] = {}
        self._published: dict[str, RegisteredTask] = {}  # the workers' registry, as last read
        self._published_at = -REGISTRY_CACHE_S
        self._known_queues: set[str] = set()
        self._snapshot_hint = SnapshotHint()  # lets a polling dashboard snapshot in one round trip

    @property
    def prefix(self) -> str:
        return self.ops.prefix

    def _register(self, fn: Callable[..., Any], **options: Any) -> TaskDef:
        definition = make_task_def(fn, **options)
        if definition.name in self.registry and self.registry[definition.name].fn is not fn:
            raise InvalidOption(f"a different task is already registered as {definition.name!r}")
        self.registry[definition.name] = definition
        return definition

    def _spec(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay_s: float = 0.0,
        eta: float | None = None,
        idempotency_key: str | None = None,
        max_retries: int | None = None,
        timeout_s: float | None = None,
        result_ttl_s: int | None = None,
        force: bool = False,
    ) -> TaskSpec:
        """A validated task. A name without a local ``@tq.task`` takes its options from the
        published registry (read by :meth:`_lookup_flow` first); a name in neither raises
        :class:`UnknownTaskName` unless ``force``."""
        local = self.registry.get(name)
        definition: TaskDef | RegisteredTask | None = local
        if local is not None:
            local.check_arguments(list(args), dict(kwargs or {}))
        else:
            definition = self._published.get(name)
            if definition is None and not force and check_task_name(name):
                known = sorted(self.registry.keys() | self._published.keys())
                raise UnknownTaskName(
                    f"no task named {name!r} is registered here or by a live or recent worker "
                    f"(known: {', '.join(known) or 'none'}); register it with @tq.task, start a worker "
                    "that has it first, or pass force=True"
                )
        d_queue = definition.queue if definition else self.default_queue
        return TaskSpec.build(
            name,
            args=args,
            kwargs=kwargs,
            queue=queue if queue is not None else d_queue,
            priority=priority if priority is not None else (definition.priority if definition else None),
            delay_s=delay_s,
            eta=eta,
            max_retries=max_retries
            if max_retries is not None
            else (definition.max_retries if definition else DEFAULT_MAX_RETRIES),
            timeout_s=timeout_s if timeout_s is not None else (definition.timeout_s if definition else None),
            result_ttl_s=result_ttl_s
            if result_ttl_s is not None
            else (definition.result_ttl_s if definition and definition.result_ttl_s is not None else self.result_ttl_s),
            backoff=definition.backoff if definition else None,
            idempotency_key=idempotency_key,
            max_payload_bytes=self.max_payload_bytes,
        )

    def _lookup_flow(self, names: Iterable[str]) -> Flow[None]:
        """Read the published task registry if a name has no local ``@tq.task`` and is not
        in a copy younger than ``REGISTRY_CACHE_S`` (an unknown name always reads it afresh)."""
        missing = {n for n in names if n not in self.registry}
        if not missing:
            return
        fresh = time.monotonic() - self._published_at < REGISTRY_CACHE_S
        if fresh and missing <= self._published.keys():
            return
        self._published = yield from self.ops.registered_tasks()
        self._published_at = time.monotonic()

    def _check_requests(self, requests: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        checked = list(requests)
        for i, req in enumerate(checked):
            if "name" not in req:
                raise InvalidOption(f"enqueue_many item {i} has no 'name'")
            extra = set(req) - ENQUEUE_OPTIONS - {"name", "args", "kwargs", "force"}
            if extra:
                raise InvalidOption(f"enqueue_many item {i} has unknown keys: {', '.join(sorted(extra))}")
        return checked

    def _specs_from_requests(self, requests: list[Mapping[str, Any]]) -> list[TaskSpec]:
        return [self._spec(**req) for req in requests]

    def _spec_for_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskSpec:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ENQUEUE_OPTIONS}
        return self._spec(definition.name, args, kwargs, **options)

    def _event_reader(
        self,
        queues: Sequence[str] | None,
        since: str | Mapping[str, str] | None,
        follow: bool,
        block_s: float,
        poll_s: float,
        known: Sequence[str] = (),
    ) -> EventReader:
        """``queues=None``: the ``known`` queues, and those created later (read from the registry)."""
        block_ms = int(block_s * 1000)
        if queues is None:
            return EventReader(self.ops, known, since, block_ms=block_ms, poll_s=poll_s, follow=follow, discover=True)
        names = [check_queue_name(q) for q in queues] or [self.default_queue]
        return EventReader(self.ops, names, since, block_ms=block_ms, poll_s=poll_s, follow=follow)

    def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError  # TaskQueue returns a handle, AsyncTaskQueue a coroutine of one

    def task(
        self,
        fn: Any = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_s: float | None = None,
        backoff: Backoff | None = None,
        result_ttl_s: int | None = None,
    ) -> Any:
        """Register a function as a task: ``@tq.task`` or ``@tq.task(queue=..., ...)``.

        Returns a :class:`TaskFunction`: call it to run the function here, ``.enqueue(...)``
        to queue it (a coroutine on an AsyncTaskQueue). ``priority=None`` uses the queue's
        default priority (``configure_queue``), else 5.
        """
        options = {
            "name": name,
            "queue": queue or self.default_queue,
            "priority": priority,
            "max_retries": max_retries,
            "timeout_s": timeout_s,
            "backoff": backoff,
            "result_ttl_s": result_ttl_s,
        }

        def decorator(f: Callable[..., Any]) -> Any:
            return TaskFunction(self._register(f, **options), self)

        return decorator(fn) if fn is not None else decorator


def _check_queue_settings(
    queue: str, aging_s: float | None, default_priority: int | None
) -> tuple[str, float | None, int | None]:
    check_queue_name(queue)
    if aging_s is not None:
        check_positive_s("aging_s", aging_s)
        if aging_s > MAX_AGING_S:
            raise InvalidOption(f"aging_s is at most {MAX_AGING_S} s (30 days); for strict priority pass aging_s=None")
    if default_priority is not None:
        check_priority(default_priority)
    return queue, aging_s, default_priority


def _queue_list(queues: str | Sequence[str] | None) -> list[str] | None:
    return [queues] if isinstance(queues, str) else (None if queues is None else list(queues))


# ---------------------------------------------------------------------------
# Blocking client


class TaskHandle:
    """A queued task, from a blocking :class:`TaskQueue`."""

    __slots__ = ("_tq", "id")

    def __init__(self, task_id: str, tq: TaskQueue) -> None:
        self.id = task_id
        self._tq = tq

    def result(self, timeout_s: float | None = None) -> Any:
        """Wait for the task to finish and return its result.

        Raises :class:`TaskFailed` if it ended dead, :class:`TaskCancelled` if cancelled,
        :class:`ResultTimeout` if ``timeout_s`` passed first.
        """
        return self._tq._exec.drive(_result_flow(self._tq.ops, self.id, timeout_s))

    def info(self) -> Task:
        return self._tq.get(self.id)

    @property
    def status(self) -> TaskStatus:
        return self.info().status

    def cancel(self) -> str:
        return self._tq.cancel(self.id)

    def __repr__(self) -> str:
        return f"TaskHandle({self.id!r})"


class DeadLetters:
    """The dead-letter queue of one queue (blocking)."""

    def __init__(self, tq: TaskQueue, queue: str) -> None:
        self._tq = tq
        self.queue = check_queue_name(queue)

    def list(self, limit: int = 100, offset: int = 0) -> list[Task]:
        """Dead tasks, oldest death first, with error, traceback and attempts."""
        return self._tq._exec.drive(_dead_list_flow(self._tq.ops, self.queue, limit, offset))

    def count(self) -> int:
        return self._tq.stats(self.queue).dead

    def requeue(
        self,
        ids: Iterable[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
        all: bool = False,  # noqa: A002 - reads best at the call site: requeue(all=True)
    ) -> int:
        """Re-drive dead tasks (by ids, by name/error type, or all) to queued; returns how many."""
        return self._tq._exec.drive(_redrive_flow(self._tq.ops, self.queue, ids, name, error_type, all))

    def purge(
        self,
        ids: Iterable[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
        all: bool = False,  # noqa: A002
    ) -> int:
        """Delete dead tasks for good; returns how many."""
        return self._tq._exec.drive(_purge_flow(self._tq.ops, self.queue, ids, name, error_type, all))


class TaskQueue(_Base):
    """A task queue on Redis, blocking API. ``url=None`` finds or starts a server
    (``embedded=False``: finds one or raises :class:`ServerUnavailable`); ``tq.server_info``
    says which.

    >>> tq = TaskQueue()                                   # doctest: +SKIP
    >>> @tq.task(queue="emails", priority=7)               # doctest: +SKIP
    ... def send_email(to: str) -> str: ...
    >>> send_email.enqueue("a@b.c", priority=9).result(timeout_s=5)   # doctest: +SKIP
    """

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        super().__init__(url, **settings)
        self.redis = redis.Redis.from_url(self.url, decode_responses=True)
        self._exec = SyncExecutor(self.redis, self.url)

    def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskHandle:
        return TaskHandle(self._enqueue_one(self._spec_for_def(definition, args, kwargs)), self)

    def _enqueue_one(self, spec: TaskSpec) -> str:
        if spec.queue in self._known_queues:  # the common case: one script call, no flow
            return self._exec.run(self.ops.enqueue([spec]))[0]
        return self._exec.drive(_enqueue_flow(self.ops, [spec], self._known_queues))[0]

    def enqueue(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> TaskHandle:
        """Queue task ``name``. Options: queue, priority, delay_s, eta, idempotency_key,
        max_retries, timeout_s, result_ttl_s. With an idempotency key already used, returns
        the first task's handle and writes nothing.

        A name with no local ``@tq.task`` takes its options from what workers published
        (:meth:`registered_tasks`); a name no live or recent worker published raises
        :class:`UnknownTaskName`, unless ``force=True``."""
        if name not in self.registry:
            self._exec.drive(self._lookup_flow([name]))
        return TaskHandle(self._enqueue_one(self._spec(name, args, kwargs, **options)), self)

    def enqueue_many(self, requests: Iterable[Mapping[str, Any]]) -> list[TaskHandle]:
        """Queue many tasks in pipelined round trips. Each request is a dict of
        :meth:`enqueue`'s arguments (and ``force``). All are validated before any is written."""
        checked = self._check_requests(requests)
        self._exec.drive(self._lookup_flow(r["name"] for r in checked))
        specs = self._specs_from_requests(checked)
        return [TaskHandle(i, self) for i in self._exec.drive(_enqueue_flow(self.ops, specs, self._known_queues))]

    def get(self, task_id: str) -> Task:
        """The task's record. Raises :class:`TaskNotFound` for an unknown or expired id."""
        return self._exec.run(self.ops.get(task_id))

    def list_tasks(self, queue: str, state: str, *, cursor: str | None = None, limit: int = 100) -> TaskPage:
        """One page of the tasks of ``queue`` in ``state``: 'queued' (claim order), 'scheduled'
        (due time), 'running' (lease deadline) or 'dead' (time of death). Pass the page's
        ``next_cursor`` for the next one: a task that stays in that state is listed exactly
        once however the queue changes meanwhile. Bad state, limit (1..1000) or cursor:
        :class:`InvalidOption`."""
        return self._exec.run(self.ops.list_page(check_queue_name(queue), state, cursor, limit))

    def handle(self, task_id: str) -> TaskHandle:
        return TaskHandle(task_id, self)

    def cancel(self, task_id: str) -> str:
        """Cancel a task: 'cancelled' at once if queued or scheduled, 'cancelling' if running
        (the worker sees the abort flag). Raises NotCancellable if it already finished."""
        return self._exec.run(self.ops.cancel(task_id))

    def stats(self, queue: str | None = None) -> QueueCounts:
        """Counts and counters of one queue (default: the default queue)."""
        return self._exec.drive(_stats_flow(self.ops, [queue or self.default_queue]))[0]

    def all_stats(self) -> list[QueueCounts]:
        return self._exec.drive(_stats_flow(self.ops, None))

    def queues(self) -> list[str]:
        """Names of every queue that has had a task."""
        return self._exec.run(self.ops.queues())

    def configure_queue(self, queue: str, *, aging_s: float | None = None, default_priority: int | None = None) -> None:
        """Set a queue's settings, shared by every producer (``None`` clears a setting).

        ``aging_s``: a waiting task gains one priority level per ``aging_s`` seconds, so
        nothing starves (new enqueues only); unset, priority is strict.
        ``default_priority``: the priority of tasks enqueued here without one (else 5).
        """
        self._exec.run(self.ops.configure_queue(*_check_queue_settings(queue, aging_s, default_priority)))

    def dead_letters(self, queue: str | None = None) -> DeadLetters:
        return DeadLetters(self, queue or self.default_queue)

    def registered_tasks(self) -> dict[str, RegisteredTask]:
        """The tasks live or recent workers published, by name (see :mod:`taskq.registry`)."""
        self._published = self._exec.drive(self.ops.registered_tasks())
        self._published_at = time.monotonic()
        return dict(self._published)

    def workers(self) -> list[WorkerSnapshot]:
        """Registered workers (id, host, pid, queues, concurrency, counts, current tasks,
        heartbeat, health), as in :meth:`snapshot`; one whose registration expired within the
        last hour has ``health`` GONE."""
        return self._exec.drive(self.ops.workers())

    def snapshot(
        self,
        queues: str | Sequence[str] | None = None,
        *,
        windows_s: Sequence[int] = DEFAULT_WINDOWS_S,
        running_limit: int = 5,
        lifetime: bool = True,
    ) -> Snapshot:
        """Everything a dashboard shows, in one round trip (two when a queue or worker appeared
        since this client's previous snapshot): per queue its depth (by
        priority), scheduled, running (up to ``running_limit`` listed, with lease ages),
        dead, lifetime counters and latency, and throughput and latency percentiles over
        each window in ``windows_s`` (seconds, up to 900); and every worker with its health.
        ``queues=None``: every known queue. ``lifetime=False`` skips the all-time latency
        percentiles (the lifetime counters are always there)."""
        flow = self.ops.snapshot(_queue_list(queues), windows_s, running_limit, lifetime, self._snapshot_hint)
        return self._exec.drive(flow)

    def events(
        self,
        queues: str | Sequence[str] | None = None,
        since: str | Mapping[str, str] | None = None,
        *,
        follow: bool = True,
        block_s: float = 1.0,
        poll_s: float = 0.1,
    ) -> Iterator[Event]:
        """Iterate over task events of ``queues`` (None: every queue, those created later too), from ``since``:
        None/"$" now, "0" the oldest kept, a stream id, or an :attr:`Event.cursor` (see
        :class:`~taskq.telemetry.EventReader`). With ``follow`` it waits for new events for
        ever (break out of the loop to stop); without, it stops once caught up."""
        names = _queue_list(queues)
        reader = self._event_reader(names, since, follow, block_s, poll_s, self.queues() if names is None else ())
        yield from self._exec.stream(reader.flow())

    def start_worker(self, **settings: Any) -> BackgroundWorker:
        """Run a worker for this queue's tasks in a background thread (notebooks, tests).
        Settings are :class:`taskq.worker.Worker`'s; ``.stop()`` stops it."""
        from taskq.worker import start_background_worker

        return start_background_worker(self, **settings)

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> TaskQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# Async client


class AsyncTaskHandle:
    """A queued task, from an :class:`AsyncTaskQueue`."""

    __slots__ = ("_tq", "id")

    def __init__(self, task_id: str, tq: AsyncTaskQueue) -> None:
        self.id = task_id
        self._tq = tq

    async def result(self, timeout_s: float | None = None) -> Any:
        return await self._tq._exec.drive(_result_flow(self._tq.ops, self.id, timeout_s))

    async def info(self) -> Task:
        return await self._tq.get(self.id)

    async def cancel(self) -> str:
        return await self._tq.cancel(self.id)

    def __repr__(self) -> str:
        return f"AsyncTaskHandle({self.id!r})"


class AsyncDeadLetters:
    """The dead-letter queue of one queue (asyncio)."""

    def __init__(self, tq: AsyncTaskQueue, queue: str) -> None:
        self._tq = tq
        self.queue = check_queue_name(queue)

    async def list(self, limit: int = 100, offset: int = 0) -> list[Task]:
        return await self._tq._exec.drive(_dead_list_flow(self._tq.ops, self.queue, limit, offset))

    async def requeue(
        self,
        ids: Iterable[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
        all: bool = False,  # noqa: A002
    ) -> int:
        return await self._tq._exec.drive(_redrive_flow(self._tq.ops, self.queue, ids, name, error_type, all))

    async def purge(
        self,
        ids: Iterable[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
        all: bool = False,  # noqa: A002
    ) -> int:
        return await self._tq._exec.drive(_purge_flow(self._tq.ops, self.queue, ids, name, error_type, all))


class AsyncTaskQueue(_Base):
    """A task queue on Redis, asyncio API; the same operations as :class:`TaskQueue`."""

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        super().__init__(url, **settings)
        self.redis = aioredis.Redis.from_url(self.url, decode_responses=True)
        self._exec = AsyncExecutor(self.redis, self.url)
        self._unsent: list[tuple[TaskSpec, asyncio.Future[str]]] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._sender_due = False  # a sender was started and has not taken the unsent tasks yet

    async def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncTaskHandle:
        spec = self._spec_for_def(definition, args, kwargs)
        return AsyncTaskHandle(await self._enqueue_one(spec), self)

    async def enqueue(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncTaskHandle:
        """See :meth:`TaskQueue.enqueue`."""
        if name not in self.registry:
            await self._exec.drive(self._lookup_flow([name]))
        spec = self._spec(name, args, kwargs, **options)
        return AsyncTaskHandle(await self._enqueue_one(spec), self)

    async def _enqueue_one(self, spec: TaskSpec) -> str:
        """Group commit: a single enqueue goes out at once while fewer than
        ``ENQUEUE_SENDERS`` sends are on their way; past that, the enqueues issued meanwhile
        go out together in the next send (one script call per queue, as enqueue_many). So
        many concurrent callers cost a round trip per batch, not per task, and a few cost
        no waiting. Every caller still returns only once its own task is written."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._unsent.append((spec, future))
        if not self._sender_due and len(self._senders) < ENQUEUE_SENDERS:
            self._sender_due = True
            sender = asyncio.create_task(self._send_unsent(), name="taskq-enqueue")
            self._senders.add(sender)
        return await future

    async def _send_unsent(self) -> None:
        me = asyncio.current_task()
        try:
            await self._send_batches()
        except BaseException:  # cancelled (the loop is closing): nobody else may send the rest
            if not self._senders - {me}:
                for _, f in self._unsent:
                    f.cancel()
                self._unsent, self._sender_due = [], False
            raise
        finally:
            if me is not None:
                self._senders.discard(me)

    async def _send_batches(self) -> None:
        while self._unsent:
            batch = [(spec, f) for spec, f in self._unsent if not f.done()]  # a cancelled caller is not sent
            self._unsent = []
            self._sender_due = False
            # One script call per queue and chunk, each answering only its own callers: a
            # caller is told of an error only if its own task was not written.
            groups: dict[str, list[tuple[TaskSpec, asyncio.Future[str]]]] = {}
            for spec, f in batch:
                groups.setdefault(spec.queue, []).append((spec, f))
            for group in groups.values():
                for start in range(0, len(group), BULK_CHUNK):
                    await self._send_group(group[start : start + BULK_CHUNK])

    async def _send_group(self, group: list[tuple[TaskSpec, asyncio.Future[str]]]) -> None:
        try:
            ids = await self._exec.drive(_enqueue_flow(self.ops, [spec for spec, _ in group], self._known_queues))
        except Exception as exc:  # noqa: BLE001 - handed to every caller of this one script call
            for _, f in group:
                if not f.done():
                    f.set_exception(exc)
            return
        except BaseException:
            for _, f in group:
                f.cancel()
            raise
        for (_, f), task_id in zip(group, ids, strict=True):
            if not f.done():
                f.set_result(task_id)

    async def enqueue_many(self, requests: Iterable[Mapping[str, Any]]) -> list[AsyncTaskHandle]:
        checked = self._check_requests(requests)
        await self._exec.drive(self._lookup_flow(r["name"] for r in checked))
        specs = self._specs_from_requests(checked)
        ids = await self._exec.drive(_enqueue_flow(self.ops, specs, self._known_queues))
        return [AsyncTaskHandle(i, self) for i in ids]

    async def get(self, task_id: str) -> Task:
        return await self._exec.run(self.ops.get(task_id))

    async def list_tasks(self, queue: str, state: str, *, cursor: str | None = None, limit: int = 100) -> TaskPage:
        """See :meth:`TaskQueue.list_tasks`."""
        return await self._exec.run(self.ops.list_page(check_queue_name(queue), state, cursor, limit))

    def handle(self, task_id: str) -> AsyncTaskHandle:
        return AsyncTaskHandle(task_id, self)

    async def cancel(self, task_id: str) -> str:
        return await self._exec.run(self.ops.cancel(task_id))

    async def stats(self, queue: str | None = None) -> QueueCounts:
        return (await self._exec.drive(_stats_flow(self.ops, [queue or self.default_queue])))[0]

    async def all_stats(self) -> list[QueueCounts]:
        return await self._exec.drive(_stats_flow(self.ops, None))

    async def queues(self) -> list[str]:
        return await self._exec.run(self.ops.queues())

    async def configure_queue(
        self, queue: str, *, aging_s: float | None = None, default_priority: int | None = None
    ) -> None:
        await self._exec.run(self.ops.configure_queue(*_check_queue_settings(queue, aging_s, default_priority)))

    def dead_letters(self, queue: str | None = None) -> AsyncDeadLetters:
        return AsyncDeadLetters(self, queue or self.default_queue)

    async def registered_tasks(self) -> dict[str, RegisteredTask]:
        """See :meth:`TaskQueue.registered_tasks`."""
        self._published = await self._exec.drive(self.ops.registered_tasks())
        self._published_at = time.monotonic()
        return dict(self._published)

    async def workers(self) -> list[WorkerSnapshot]:
        """See :meth:`TaskQueue.workers`."""
        return await self._exec.drive(self.ops.workers())

    async def snapshot(
        self,
        queues: str | Sequence[str] | None = None,
        *,
        windows_s: Sequence[int] = DEFAULT_WINDOWS_S,
        running_limit: int = 5,
        lifetime: bool = True,
    ) -> Snapshot:
        """See :meth:`TaskQueue.snapshot`."""
        flow = self.ops.snapshot(_queue_list(queues), windows_s, running_limit, lifetime, self._snapshot_hint)
        return await self._exec.drive(flow)

    async def events(
        self,
        queues: str | Sequence[str] | None = None,
        since: str | Mapping[str, str] | None = None,
        *,
        follow: bool = True,
        block_s: float = 1.0,
        poll_s: float = 0.1,
    ) -> AsyncIterator[Event]:
        """Task events as an async iterator; see :meth:`TaskQueue.events`. To stop early,
        close it: ``async with contextlib.aclosing(tq.events()) as events: async for ...``."""
        names = _queue_list(queues)
        known = await self.queues() if names is None else ()
        reader = self._event_reader(names, since, follow, block_s, poll_s, known)
        async with contextlib.aclosing(self._exec.stream(reader.flow())) as events:
            async for event in events:
                yield event

    def start_worker(self, **settings: Any) -> BackgroundWorker:
        """Run a worker in a background thread with its own event loop; ``.stop()`` stops it."""
        from taskq.worker import start_background_worker

        return start_background_worker(self, **settings)

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def __aenter__(self) -> AsyncTaskQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
