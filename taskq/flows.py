"""Every multi-step client operation, once, as a *flow*: a generator that yields plans
(:mod:`taskq.ops`) or seconds to sleep, and returns the result. No I/O here: the blocking
client drives flows with ``redis.Redis``, the async client with ``redis.asyncio``
(:mod:`taskq.executor`), so no flow, retry or loop is written twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from taskq.backoff import exponential_s
from taskq.durable import replicated
from taskq.errors import InvalidOption, ResultTimeout, TaskCancelled, TaskFailed
from taskq.keys import is_utf8
from taskq.ops import MAX_BATCH, Operations, chunks
from taskq.plan import Flow, Plan
from taskq.shards import QueueDirectory, each_dead_flow, prepare_flow, prepared
from taskq.task import Task, TaskSpec, TaskStatus, check_non_negative_int

#: A DLQ action on one physical queue: :func:`redrive_flow` or :func:`purge_flow`.
DeadFlow = Callable[[Operations, str, Iterable[str] | None, str | None, str | None, bool], Flow[int]]

#: Result polling: the pause between reads doubles from the first to the last.
POLL_FIRST_S = 0.001
POLL_MAX_S = 0.05


def result_flow(ops: Operations, task_id: str, timeout_s: float | None) -> Flow[Any]:
    """Poll a task until it ends; its result, or TaskFailed / TaskCancelled / ResultTimeout."""
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s >= 0
    ):
        raise InvalidOption(f"timeout_s must be None or a number of seconds >= 0, got {timeout_s!r}")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    polls = 0
    while True:
        polls += 1
        task: Task = yield ops.get(task_id)
        if task.status is TaskStatus.SUCCEEDED:
            return task.result
        if task.status is TaskStatus.DEAD:
            raise TaskFailed(task.id, task.error_type or "", task.error or "", task.traceback or "")
        if task.status is TaskStatus.CANCELLED:
            raise TaskCancelled(f"task {task_id} was cancelled")
        if deadline is not None and time.monotonic() >= deadline:
            raise ResultTimeout(f"task {task_id} is still {task.status.value} after {timeout_s}s")
        pause = exponential_s(polls, POLL_FIRST_S, POLL_MAX_S)
        yield pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))


def enqueue_flow(ops: Operations, specs: list[TaskSpec], known: set[str]) -> Flow[list[str]]:
    """Enqueue tasks (the one enqueue path of both clients): register queues this client
    has not seen (``known``, updated) and route tasks of sharded queues to their sub-queues
    (:func:`taskq.shards.prepare_flow`), then one pipelined round trip per MAX_BATCH tasks."""
    if not specs:
        return []
    specs = yield from prepare_flow(ops, specs, known)
    if len(specs) <= MAX_BATCH:  # the common case, one round trip
        first: list[str] = yield _enqueue_plan(ops, specs)
        return first
    ids: list[str] = []
    for chunk in chunks(specs):
        ids += yield _enqueue_plan(ops, chunk)
    return ids


def enqueue_now(ops: Operations, specs: list[TaskSpec], known: set[str]) -> Plan[list[str]] | None:
    """The one plan :func:`enqueue_flow` would send for ``specs`` when it needs nothing read or
    registered first (:func:`taskq.shards.prepared`) and they fit one round trip; else None
    (drive the flow). A client runs this plan directly, without a generator to drive."""
    if not specs or len(specs) > MAX_BATCH:
        return None
    ready = prepared(specs, known)
    return None if ready is None else _enqueue_plan(ops, ready)


def _enqueue_plan(ops: Operations, specs: Sequence[TaskSpec]) -> Plan[list[str]]:
    """The enqueue plan; with ``durable``, followed by a WAIT for a replica (:mod:`taskq.durable`)."""
    return replicated(ops.enqueue(specs)) if ops.durable else ops.enqueue(specs)


def dead_list_flow(ops: Operations, queue: str, limit: int, offset: int) -> Flow[list[Task]]:
    check_non_negative_int("limit", limit)
    check_non_negative_int("offset", offset, upper=2**53)
    ids = yield ops.list_ids(queue, TaskStatus.DEAD, offset, limit)
    if not ids:
        return []
    tasks: list[Task | None] = yield ops.get_many(ids)
    return [t for t in tasks if t is not None]


def dead_select_flow(
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
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InvalidOption(f"ids must be a list of task ids, got {type(ids).__name__}")
        chosen_ids = list(ids)
        if not all(isinstance(i, str) and is_utf8(i) for i in chosen_ids):
            raise InvalidOption("ids must be task ids (text)")
        return chosen_ids
    if name is None and error_type is None:
        return None
    chosen: list[str] = []
    offset = 0
    while True:
        batch: list[Task] = yield from dead_list_flow(ops, queue, MAX_BATCH, offset)
        chosen += [
            t.id
            for t in batch
            if (name is None or t.name == name) and (error_type is None or t.error_type == error_type)
        ]
        if len(batch) < MAX_BATCH:
            return chosen
        offset += MAX_BATCH


def redrive_flow(
    ops: Operations, queue: str, ids: Iterable[str] | None, name: str | None, error_type: str | None, all_: bool
) -> Flow[int]:
    chosen = yield from dead_select_flow(ops, queue, ids, name, error_type, all_)
    if chosen is None:
        total = 0
        while True:
            moved: list[str] = yield ops.redrive(queue, None, MAX_BATCH)
            total += len(moved)
            if len(moved) < MAX_BATCH:
                return total
    total = 0
    for chunk in chunks(chosen):
        moved = yield ops.redrive(queue, chunk)
        total += len(moved)
    return total


def purge_flow(
    ops: Operations, queue: str, ids: Iterable[str] | None, name: str | None, error_type: str | None, all_: bool
) -> Flow[int]:
    chosen = yield from dead_select_flow(ops, queue, ids, name, error_type, all_)
    total = 0
    if chosen is None:
        while True:
            n: int = yield ops.purge_dead(queue, None, MAX_BATCH)
            total += n
            if n < MAX_BATCH:
                return total
    for chunk in chunks(chosen):
        total += yield ops.purge_dead(queue, chunk)
    return total


def dead_letters_flow(
    action: DeadFlow,
    ops: Operations,
    directory: QueueDirectory,
    queue: str,
    ids: Iterable[str] | None,
    name: str | None,
    error_type: str | None,
    all_: bool,
) -> Flow[int]:
    """``action`` (:func:`redrive_flow` or :func:`purge_flow`) on a queue's dead tasks, over its
    sub-queues when it is sharded (:func:`taskq.shards.each_dead_flow`): both clients' DLQ calls."""
    return (
        yield from each_dead_flow(
            ops, directory, queue, ids, lambda q, chosen: action(ops, q, chosen, name, error_type, all_)
        )
    )
