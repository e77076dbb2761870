"""The asyncio producer API: :class:`AsyncTaskQueue`, the same operations as
:class:`~taskq.client.TaskQueue`, driven by the async executor.

Only this client batches concurrent single enqueues (group commit, :meth:`AsyncTaskQueue._enqueue_one`):
many coroutines can enqueue at the same moment on one event loop, while a blocking caller
has one enqueue in flight per thread and gets its speed from the executor's fast path instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from taskq.client_base import ClientBase, check_queue_settings, queue_list
from taskq.client_schedules import AsyncScheduleMethods
from taskq.connection import async_client
from taskq.executor import AsyncExecutor
from taskq.flows import dead_letters_flow, enqueue_flow, enqueue_now, purge_flow, redrive_flow, result_flow
from taskq.inspection import DEFAULT_INSPECT_LIMIT, Inspection
from taskq.keys import check_queue_name
from taskq.ops import QueueCounts, chunks
from taskq.ratelimit import RateLimit, queue_rate
from taskq.registry import RegisteredTask, TaskDef
from taskq.shard_reads import inspect_flow, list_page_flow, reader_queues, snapshot_flow
from taskq.shards import configure_flow, counts_flow, dead_page_flow, layouts_flow
from taskq.task import (
    Task,
    TaskPage,
    TaskSpec,
)
from taskq.telemetry import DEFAULT_WINDOWS_S, Event, Snapshot, WorkerSnapshot
from taskq.telemetry.memory import with_memory

if TYPE_CHECKING:
    from taskq.worker import BackgroundWorker


#: Single enqueues of an AsyncTaskQueue on their way at once (more wait and go out together).
ENQUEUE_SENDERS = 4


class AsyncTaskHandle:
    """A queued task, from an :class:`AsyncTaskQueue`."""

    __slots__ = ("_tq", "id")

    def __init__(self, task_id: str, tq: AsyncTaskQueue) -> None:
        self.id = task_id
        self._tq = tq

    async def result(self, timeout_s: float | None = None) -> Any:
        return await self._tq._exec.drive(result_flow(self._tq.ops, self.id, timeout_s))

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
        return await self._tq._exec.drive(
            dead_page_flow(self._tq.ops, self._tq._known_queues, self.queue, limit, offset)
        )

    async def requeue(
        self,
        ids: Iterable[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
        all: bool = False,  # noqa: A002
    ) -> int:
        tq = self._tq
        flow = dead_letters_flow(redrive_flow, tq.ops, tq._known_queues, self.queue, ids, name, error_type, all)
        return await tq._exec.drive(flow)

    async def purge(
        self,
        ids: Iterable[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
        all: bool = False,  # noqa: A002
    ) -> int:
        tq = self._tq
        flow = dead_letters_flow(purge_flow, tq.ops, tq._known_queues, self.queue, ids, name, error_type, all)
        return await tq._exec.drive(flow)


class AsyncTaskQueue(ClientBase, AsyncScheduleMethods):
    """A task queue on Redis, asyncio API; the same operations as :class:`TaskQueue`."""

    def __init__(self, url: str | None = None, **settings: Any) -> None:
        super().__init__(url, **settings)
        self.redis = async_client(self.url)
        self._exec = AsyncExecutor(self.redis, self.url)
        self._unsent: list[tuple[TaskSpec, asyncio.Future[str]]] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._sender_due = False  # a sender was started and has not taken the unsent tasks yet
        self._direct = 0  # callers sending their own task (nothing else was on its way)

    async def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncTaskHandle:
        depends_on = kwargs.pop("depends_on", None)
        spec = self._spec_for_def(definition, args, kwargs)
        if depends_on is not None:
            return AsyncTaskHandle(await self._exec.drive(self._depends_flow(spec, depends_on)), self)
        return AsyncTaskHandle(await self._enqueue_one(spec), self)

    async def enqueue(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncTaskHandle:
        """See :meth:`TaskQueue.enqueue`."""
        depends_on = options.pop("depends_on", None)
        if not isinstance(name, str) or name not in self.registry:  # not a str: refused by the lookup
            await self._exec.drive(self._lookup_flow([name], force=options.get("force") is True))
        spec = self._spec(name, args, kwargs, **options)
        if depends_on is not None:
            return AsyncTaskHandle(await self._exec.drive(self._depends_flow(spec, depends_on)), self)
        return AsyncTaskHandle(await self._enqueue_one(spec), self)

    async def _enqueue_one(self, spec: TaskSpec) -> str:
        """Group commit: a single enqueue goes out at once while fewer than
        ``ENQUEUE_SENDERS`` sends are on their way; past that, the enqueues issued meanwhile
        go out together in the next send (one script call per queue, as enqueue_many). So
        many concurrent callers cost a round trip per batch, not per task, and a few cost
        no waiting. Every caller still returns only once its own task is written.

        With nothing else on its way (no sender, no caller waiting, no other direct send: a
        caller awaiting each enqueue in turn), the caller sends its task itself, with no
        sender task and future to hand it over; callers arriving meanwhile are batched as
        above."""
        if not self._senders and not self._unsent and not self._direct:
            self._direct += 1
            try:
                return (await self._enqueue_specs([spec]))[0]
            finally:
                self._direct -= 1
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
                for chunk in chunks(group):
                    await self._send_group(list(chunk))

    async def _send_group(self, group: list[tuple[TaskSpec, asyncio.Future[str]]]) -> None:
        try:
            ids = await self._enqueue_specs([spec for spec, _ in group])
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
        ids = await self._enqueue_specs(specs)
        return [AsyncTaskHandle(i, self) for i in ids]

    async def _enqueue_specs(self, specs: list[TaskSpec]) -> list[str]:
        """As :meth:`TaskQueue._enqueue_specs`: the plan at once when nothing is read first."""
        plan = enqueue_now(self.ops, specs, self._known_queues)
        if plan is not None:
            return await self._exec.run(plan)
        return await self._exec.drive(enqueue_flow(self.ops, specs, self._known_queues))

    async def get(self, task_id: str) -> Task:
        return await self._exec.run(self.ops.get(task_id))

    async def list_tasks(self, queue: str, state: str, *, cursor: str | None = None, limit: int = 100) -> TaskPage:
        """See :meth:`TaskQueue.list_tasks`."""
        return await self._exec.drive(list_page_flow(self.ops, self._known_queues, queue, state, cursor, limit))

    def handle(self, task_id: str) -> AsyncTaskHandle:
        return AsyncTaskHandle(task_id, self)

    async def cancel(self, task_id: str) -> str:
        return await self._exec.run(self.ops.cancel(task_id))

    async def stats(self, queue: str | None = None) -> QueueCounts:
        return (await self._exec.drive(counts_flow(self.ops, [queue or self.default_queue], self._known_queues)))[0]

    async def all_stats(self) -> list[QueueCounts]:
        return await self._exec.drive(counts_flow(self.ops, None, self._known_queues))

    async def inspect(self, queue: str | None = None, *, limit: int = DEFAULT_INSPECT_LIMIT) -> Inspection:
        """A read-only look at one queue's sorted sets (see :meth:`TaskQueue.inspect`)."""
        name = self.default_queue if queue is None else queue
        return await self._exec.drive(inspect_flow(self.ops, self._known_queues, name, limit))

    async def queues(self) -> list[str]:
        return await self._exec.run(self.ops.queues())

    async def configure_queue(
        self,
        queue: str,
        *,
        aging_s: float | None = None,
        default_priority: int | None = None,
        rate: str | RateLimit | EllipsisType | None = ...,
        shards: int | None = None,
    ) -> None:
        """See :meth:`TaskQueue.configure_queue`."""
        limit = queue_rate(rate)
        settings = check_queue_settings(queue, aging_s, default_priority)
        await self._exec.drive(configure_flow(self.ops, self._known_queues, *settings, limit, shards))

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
        flow = snapshot_flow(
            self.ops, self._known_queues, queue_list(queues), windows_s, running_limit, lifetime, self._snapshot_hint
        )
        flow = with_memory(flow, self.result_ttl_s)  # used_memory and retained records, same round trip
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
        names = queue_list(queues)
        known = await self.queues() if names is None else ()
        layout = await self._exec.drive(
            layouts_flow(self.ops, self._known_queues, reader_queues(names, known, self.default_queue))
        )
        reader = self._event_reader(names, since, follow, block_s, poll_s, known, layout)
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
