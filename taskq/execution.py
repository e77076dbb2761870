"""Task execution, one part of the worker (:class:`taskq.worker.Worker` mixes it in): run a
claimed task (async on the loop, sync in a thread, with its timeout), turn its end into a
completion or a failure for the next flush, and log each finished attempt.

The worker's claim loop calls :meth:`TaskExecution._start`; the flush sends what
:meth:`TaskExecution._queue_outcome` collected and hands fail.lua's answers back to
:meth:`TaskExecution._log_failure`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from taskq.errors import (
    NotSerializable,
    Retry,
    TaskTimeout,
    UnknownTaskName,
)
from taskq.executor import AsyncExecutor
from taskq.ops import ClaimedTask, Completion, Failure, Operations
from taskq.progress import PROGRESS_INTERVAL_S, progress_plan
from taskq.registry import TaskDef
from taskq.task import dumps
from taskq.worker_context import TaskContext, _current

log = logging.getLogger("taskq.worker")
#: Log level of a finished attempt, by outcome ('retrying': it failed and will run again).
#: Successes are DEBUG: a line per task at INFO would halve a fast worker's throughput.
_OUTCOME_LEVELS = {
    "succeeded": logging.DEBUG,
    "cancelled": logging.INFO,
    "retrying": logging.WARNING,
    "dead": logging.ERROR,
}


@dataclass(slots=True)
class _Held:
    """A task this worker holds a lease on, from claim until its outcome is flushed."""

    task: ClaimedTask
    context: TaskContext
    runner: asyncio.Task[None] | None = None
    started: float = 0.0  # time.perf_counter() when the run began, for the duration in logs
    ran_ms: float | None = None  # how long the attempt ran, measured when it ended
    released: bool = False  # given back at shutdown: its outcome must not be written
    lost: bool = False  # lease gone (requeued elsewhere): its outcome would be refused
    progress: str | None = None  # the latest progress reported (JSON), not written yet
    progress_writer: bool = False  # a writer is on its way (taskq.progress: rate-limited)


class TaskExecution:
    """Running tasks and recording how each attempt ended (a mixin of :class:`~taskq.worker.Worker`)."""

    id: str
    ops: Operations
    registry: dict[str, TaskDef]
    processed: int
    failed: int
    _held: dict[str, _Held]
    _running: set[asyncio.Task[None]]
    _pending: list[tuple[Completion | Failure, _Held]]
    _threads: ThreadPoolExecutor
    _thread_calls: set[Future[Any]]
    _slot_event: asyncio.Event
    _flush_event: asyncio.Event
    _exec: AsyncExecutor

    def _start(self, task: ClaimedTask) -> None:
        context = TaskContext(
            task.id, task.queue, task.name, task.attempts, self.id, task.token, meta=MappingProxyType(task.meta)
        )
        held = _Held(task, context)
        loop = asyncio.get_running_loop()

        def report(value: str) -> None:  # from the task's thread or coroutine
            held.progress = value
            if not held.progress_writer:
                held.progress_writer = True
                loop.call_soon_threadsafe(self._start_progress_writer, held)

        context._report = report
        self._held[task.id] = held
        runner = asyncio.create_task(self._execute(held), name=f"taskq:{task.id}")
        held.runner = runner
        self._running.add(runner)
        runner.add_done_callback(self._on_done)

    def _start_progress_writer(self, held: _Held) -> None:
        writer = asyncio.create_task(self._write_progress(held), name=f"taskq-progress:{held.task.id}")
        writers: set[asyncio.Task[None]] = self.__dict__.setdefault("_progress_writers", set())
        writers.add(writer)  # held until done (the loop keeps only weak references)
        writer.add_done_callback(writers.discard)

    async def _write_progress(self, held: _Held) -> None:
        """Write the latest progress, then at most once per PROGRESS_INTERVAL_S while it changes."""
        try:
            while held.progress is not None and not (held.released or held.lost):
                value, held.progress = held.progress, None
                await self._send_progress(held, value)
                await asyncio.sleep(PROGRESS_INTERVAL_S)
        finally:
            held.progress_writer = False
            if held.progress is not None and not (held.released or held.lost):
                self._start_progress_writer(held)  # a report that came in as this writer ended

    async def _flush_progress(self, held: _Held) -> None:
        """Write a progress value the rate limit still holds back, before the outcome: whoever
        sees the task ended then reads its last progress too."""
        value, held.progress = held.progress, None
        if value is not None and not (held.released or held.lost):
            await self._send_progress(held, value)

    async def _send_progress(self, held: _Held, value: str) -> None:
        task = held.task
        try:
            await self._exec.run(
                progress_plan(self.ops, task.queue, task.id, task.token, value, self.id, task.attempts)
            )
        except Exception:  # progress is best effort; the task and its outcome go on
            log.debug("progress of task %s not written", task.id, exc_info=True)

    def _on_done(self, runner: asyncio.Task[None]) -> None:
        self._running.discard(runner)
        self._slot_event.set()

    async def _execute(self, held: _Held) -> None:
        try:
            await self._attempt(held)
        finally:
            # The attempt is over: drop the context's progress callback, the one link back
            # (held -> context -> report -> held). Without the cycle, a task's objects are
            # freed as it ends, not left to the cyclic GC (which, at concurrency 100, was
            # promoting every task's objects and running full collections over them).
            held.context._report = None

    async def _attempt(self, held: _Held) -> None:
        task = held.task
        held.started = time.perf_counter()
        _current.set(held.context)
        definition = self.registry.get(task.name)
        if definition is None:
            # Retried like any failure: during a rolling deploy a newer worker may know it.
            err = UnknownTaskName(f"no task named {task.name!r} is registered on worker {self.id}")
            self._fail(held, err, "", retry=True)
            return
        try:
            result = await self._call(definition, task)
        except asyncio.CancelledError:
            if held.released or held.lost:
                return  # shutdown gave it back, or another attempt owns it
            if held.context.aborted:
                self._finish(held, "null", outcome="cancelled")
                return
            raise
        except Retry as exc:
            await self._flush_progress(held)
            self._fail(held, exc, traceback.format_exc(), retry=True, delay_s=exc.delay_s)
            return
        except Exception as exc:  # noqa: BLE001 - any task error is recorded, never raised
            await self._flush_progress(held)
            self._fail(held, exc, traceback.format_exc(), retry=True)
            return
        if held.released or held.lost:
            return
        await self._flush_progress(held)
        try:
            result_json = "null" if result is None else dumps(result, f"the result of task {task.name}")
        except NotSerializable as exc:
            self._fail(held, exc, "", retry=False)
            return
        self._finish(held, result_json, outcome="cancelled" if held.context.aborted else "succeeded")

    async def _call(self, definition: TaskDef, task: ClaimedTask) -> Any:
        if definition.is_async:
            coro = definition.fn(*task.args, **task.kwargs)
            if task.timeout_s is None:
                return await coro
            try:
                async with asyncio.timeout(task.timeout_s):
                    return await coro
            except TimeoutError:
                raise TaskTimeout(f"task {task.name} ran past its timeout of {task.timeout_s}s") from None
        return await self._call_in_thread(definition, task)

    async def _call_in_thread(self, definition: TaskDef, task: ClaimedTask) -> Any:
        """Run a sync task in the thread pool. Its timeout counts from the moment the
        function starts, not from when it was queued for a free thread."""
        loop = asyncio.get_running_loop()
        started = loop.create_future()
        context = contextvars.copy_context()

        def mark_started() -> None:
            if not started.done():
                started.set_result(None)

        def run() -> Any:
            loop.call_soon_threadsafe(mark_started)
            return context.run(definition.fn, *task.args, **task.kwargs)

        thread_call = self._threads.submit(run)
        self._thread_calls.add(thread_call)
        thread_call.add_done_callback(self._thread_calls.discard)
        future = asyncio.wrap_future(thread_call)
        if task.timeout_s is None:
            return await future
        await asyncio.wait({started, future}, return_when=asyncio.FIRST_COMPLETED)
        try:
            return await asyncio.wait_for(future, task.timeout_s)
        except TimeoutError:
            current = context.get(_current)
            if current is not None:
                current.aborted = True  # a cooperative task can notice and stop
            raise TaskTimeout(
                f"sync task {task.name} ran past its timeout of {task.timeout_s}s; "
                "its thread runs on, and its result will be ignored"
            ) from None

    def _fail(self, held: _Held, exc: BaseException, tb: str, *, retry: bool, delay_s: float | None = None) -> None:
        task = held.task
        delay_ms = -1
        if retry:
            seconds = delay_s if delay_s is not None else task.backoff.delay_s(task.attempts)
            delay_ms = max(0, int(seconds * 1000))
        held.ran_ms = self._ran_ms(held)
        self.failed += 1
        # Logged once fail.lua answers: the script decides retry or dead (_log_failure).
        command = self.ops.fail_command(task, type(exc).__name__, str(exc), tb, delay_ms)
        self._queue_outcome(command, held)

    def _finish(self, held: _Held, result_json: str, *, outcome: str) -> None:
        self.processed += 1
        held.ran_ms = self._ran_ms(held)
        self._log_outcome(held, outcome)
        self._queue_outcome(self.ops.complete_command(held.task, result_json, outcome), held)

    @staticmethod
    def _ran_ms(held: _Held) -> float | None:
        return round((time.perf_counter() - held.started) * 1000, 3) if held.started else None

    def _log_failure(self, failure: Failure, held: _Held, reply: tuple[str, int]) -> None:
        """Log a failed attempt as fail.lua recorded it: ``('scheduled', due_ms)`` is a retry,
        ``('dead', ms)`` the dead-letter queue (the script decides; this only reports)."""
        task = held.task
        error = f"{failure.error_type}: {failure.error}"
        if reply[0] == "scheduled":
            delay_s = max(0, failure.retry_delay_ms) / 1000
            then = f"retry {task.attempts} of {task.max_retries} in {delay_s:.3g} s"
            self._log_outcome(held, "retrying", error, failure.error_type, then)
        else:
            why = "no retries left" if task.retries_left == 0 else "not retryable"
            self._log_outcome(held, "dead", error, failure.error_type, f"dead ({why})")

    def _log_outcome(
        self, held: _Held, outcome: str, error: str = "", error_type: str | None = None, then: str = ""
    ) -> None:
        """One log record per finished attempt, with the task fields as ``extra`` (the JSON
        log format writes them; see :class:`taskq.telemetry.JsonLogFormatter`): how long the
        attempt ran, and for a failure what happens next (``then``)."""
        level = _OUTCOME_LEVELS.get(outcome, logging.INFO)
        if not log.isEnabledFor(level):
            return
        task = held.task
        duration_ms = held.ran_ms
        fields = {
            "task_id": task.id,
            "task": task.name,
            "queue": task.queue,
            "attempt": task.attempts,
            "worker": self.id,
            "duration_ms": duration_ms,
            "outcome": outcome,
            "error_type": error_type,
        }
        ran = "" if duration_ms is None else f", ran for {duration_ms:.1f} ms"
        verb = "failed" if error else outcome
        then = f"; {then}" if then else ""
        detail = f": {error}" if error else ""
        log.log(level, "task %s %s attempt %d %s%s%s%s", task.id, task.name, task.attempts, verb, ran, then, detail,
                extra=fields)  # fmt: skip

    def _queue_outcome(self, command: Completion | Failure, held: _Held) -> None:
        self._pending.append((command, held))
        self._flush_event.set()
