"""The blocking producer API: :class:`TaskQueue`, its task handles and dead-letter queues.

Thin: every operation is a plan (:mod:`taskq.ops`) or a flow (:mod:`taskq.flows`) driven
by the blocking executor; what it shares with :class:`~taskq.async_client.AsyncTaskQueue`
lives in :mod:`taskq.client_base`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Any

from taskq.client_base import ClientBase, check_queue_settings, queue_list
from taskq.client_schedules import ScheduleMethods
from taskq.connection import sync_client
from taskq.executor import SyncExecutor
from taskq.flows import dead_letters_flow, enqueue_flow, enqueue_now, purge_flow, redrive_flow, result_flow
from taskq.inspection import DEFAULT_INSPECT_LIMIT, Inspection
from taskq.keys import check_queue_name
from taskq.ops import QueueCounts
from taskq.ratelimit import RateLimit, queue_rate
from taskq.registry import RegisteredTask, TaskDef
from taskq.shard_reads import inspect_flow, list_page_flow, reader_queues, snapshot_flow
from taskq.shards import configure_flow, counts_flow, dead_page_flow, layouts_flow
from taskq.task import (
    Task,
    TaskPage,
    TaskSpec,
    TaskStatus,
)
from taskq.telemetry import DEFAULT_WINDOWS_S, Event, Snapshot, WorkerSnapshot
from taskq.telemetry.memory import with_memory

if TYPE_CHECKING:
    from taskq.worker import BackgroundWorker


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
        return self._tq._exec.drive(result_flow(self._tq.ops, self.id, timeout_s))

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
        return self._tq._exec.drive(dead_page_flow(self._tq.ops, self._tq._known_queues, self.queue, limit, offset))

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
        tq = self._tq
        flow = dead_letters_flow(redrive_flow, tq.ops, tq._known_queues, self.queue, ids, name, error_type, all)
        return tq._exec.drive(flow)

    def purge(
        self,
        ids: Iterable[str] | None = None,
        *,
        name: str | None = None,
        error_type: str | None = None,
        all: bool = False,  # noqa: A002
    ) -> int:
        """Delete dead tasks for good; returns how many."""
        tq = self._tq
        flow = dead_letters_flow(purge_flow, tq.ops, tq._known_queues, self.queue, ids, name, error_type, all)
        return tq._exec.drive(flow)


class TaskQueue(ClientBase, ScheduleMethods):
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
        self.redis = sync_client(self.url)
        self._exec = SyncExecutor(self.redis, self.url)

    def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskHandle:
        depends_on = kwargs.pop("depends_on", None)
        spec = self._spec_for_def(definition, args, kwargs)
        if depends_on is not None:
            return TaskHandle(self._exec.drive(self._depends_flow(spec, depends_on)), self)
        return TaskHandle(self._enqueue_one(spec), self)

    def _enqueue_one(self, spec: TaskSpec) -> str:
        return self._enqueue_specs([spec])[0]

    def _enqueue_specs(self, specs: list[TaskSpec]) -> list[str]:
        """The one enqueue path (:func:`~taskq.flows.enqueue_flow`), as for the async client:
        for queues already known and fresh, its one plan run at once
        (:func:`~taskq.flows.enqueue_now`), one script call per queue."""
        plan = enqueue_now(self.ops, specs, self._known_queues)
        if plan is not None:
            return self._exec.run(plan)
        return self._exec.drive(enqueue_flow(self.ops, specs, self._known_queues))

    def enqueue(
        self, name: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, **options: Any
    ) -> TaskHandle:
        """Queue task ``name``. Options: queue, priority, delay_s, eta, idempotency_key,
        meta (str labels the task carries, ``current_task().meta``), max_retries, timeout_s,
        result_ttl_s, depends_on (task handles or ids: the task waits until each succeeded,
        and is cancelled if one fails). With an idempotency key already used, returns
        the first task's handle and writes nothing.

        A name with no local ``@tq.task`` takes its options from what workers published
        (:meth:`registered_tasks`); a name no live or recent worker published raises
        :class:`UnknownTaskName`, unless ``force=True``."""
        depends_on = options.pop("depends_on", None)
        if not isinstance(name, str) or name not in self.registry:  # not a str: refused by the lookup
            self._exec.drive(self._lookup_flow([name], force=options.get("force") is True))
        spec = self._spec(name, args, kwargs, **options)
        if depends_on is not None:
            return TaskHandle(self._exec.drive(self._depends_flow(spec, depends_on)), self)
        return TaskHandle(self._enqueue_one(spec), self)

    def enqueue_many(self, requests: Iterable[Mapping[str, Any]]) -> list[TaskHandle]:
        """Queue many tasks in pipelined round trips. Each request is a dict of
        :meth:`enqueue`'s arguments (and ``force``). All are validated before any is written."""
        checked = self._check_requests(requests)
        self._exec.drive(self._lookup_flow(r["name"] for r in checked))
        specs = self._specs_from_requests(checked)
        return [TaskHandle(i, self) for i in self._enqueue_specs(specs)]

    def get(self, task_id: str) -> Task:
        """The task's record. Raises :class:`TaskNotFound` for an unknown or expired id."""
        return self._exec.run(self.ops.get(task_id))

    def list_tasks(self, queue: str, state: str, *, cursor: str | None = None, limit: int = 100) -> TaskPage:
        """One page of the tasks of ``queue`` in ``state``: 'queued' (claim order), 'scheduled'
        (due time), 'running' (lease deadline) or 'dead' (time of death). Pass the page's
        ``next_cursor`` for the next one: a task that stays in that state is listed exactly
        once however the queue changes meanwhile. Bad state, limit (1..1000) or cursor:
        :class:`InvalidOption`."""
        return self._exec.drive(list_page_flow(self.ops, self._known_queues, queue, state, cursor, limit))

    def handle(self, task_id: str) -> TaskHandle:
        return TaskHandle(task_id, self)

    def cancel(self, task_id: str) -> str:
        """Cancel a task: 'cancelled' at once if queued or scheduled, 'cancelling' if running
        (the worker sees the abort flag). Raises NotCancellable if it already finished."""
        return self._exec.run(self.ops.cancel(task_id))

    def stats(self, queue: str | None = None) -> QueueCounts:
        """Counts and counters of one queue (default: the default queue)."""
        return self._exec.drive(counts_flow(self.ops, [queue or self.default_queue], self._known_queues))[0]

    def all_stats(self) -> list[QueueCounts]:
        return self._exec.drive(counts_flow(self.ops, None, self._known_queues))

    def inspect(self, queue: str | None = None, *, limit: int = DEFAULT_INSPECT_LIMIT) -> Inspection:
        """A read-only look at one queue's sorted sets at one instant: queued (claim order,
        scores decoded), scheduled (due times), running (lease deadlines, worker, attempt,
        fencing token) and dead, each listed up to ``limit`` (1..1000) with its total."""
        name = self.default_queue if queue is None else queue
        return self._exec.drive(inspect_flow(self.ops, self._known_queues, name, limit))

    def queues(self) -> list[str]:
        """Names of every queue that has had a task."""
        return self._exec.run(self.ops.queues())

    def configure_queue(
        self,
        queue: str,
        *,
        aging_s: float | None = None,
        default_priority: int | None = None,
        rate: str | RateLimit | EllipsisType | None = ...,
        shards: int | None = None,
    ) -> None:
        """Set a queue's settings, shared by every producer (``None`` clears a setting).

        ``aging_s``: a waiting task gains one priority level per ``aging_s`` seconds, so
        nothing starves (new enqueues only); unset, priority is strict.
        ``default_priority``: the priority of tasks enqueued here without one (else 5).
        ``rate``: a rate limit for the whole queue across every worker, e.g. ``"100/s"``
        or a :func:`~taskq.ratelimit.parse_rate` result (burst, algorithm); left out, the
        limit stays as it is (``rate=None`` clears it).
        ``shards``: split the queue into that many sub-queues (1..64), each with its own hash
        tag, so a hot queue spreads over several Cluster masters (:mod:`taskq.shards`; priority
        then holds within each sub-queue, approximately across them); None leaves it as it is,
        1 unshards. Refused while the current sub-queues hold tasks (:class:`~taskq.shards.ShardsBusy`),
        and together with a rate limit (:class:`~taskq.shards.NotSupportedOnShardedQueue`).
        Running workers follow a change at their next maintenance run (``maintenance_s``).
        """
        limit = queue_rate(rate)
        settings = check_queue_settings(queue, aging_s, default_priority)
        self._exec.drive(configure_flow(self.ops, self._known_queues, *settings, limit, shards))

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
        flow = snapshot_flow(
            self.ops, self._known_queues, queue_list(queues), windows_s, running_limit, lifetime, self._snapshot_hint
        )
        flow = with_memory(flow, self.result_ttl_s)  # used_memory and retained records, same round trip
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
        names = queue_list(queues)
        known = self.queues() if names is None else ()
        layout = self._exec.drive(
            layouts_flow(self.ops, self._known_queues, reader_queues(names, known, self.default_queue))
        )
        reader = self._event_reader(names, since, follow, block_s, poll_s, known, layout)
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
