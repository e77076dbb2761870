"""Reads of a sharded queue (:mod:`taskq.shards`) shown as one queue: ``snapshot``,
``inspect`` and ``list_tasks`` read each physical queue on its own slot and merge the
replies client-side; the events reader's discovery reads the shard counts
(:func:`layout_plan`). The sub-queues are named nowhere in a result but in task ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from taskq.inspection import Inspection, check_limit, checked_inspect_plan, inspect_plan, merge_inspections
from taskq.keys import SHARD_SEPARATOR, check_queue_name
from taskq.ops import CURSOR_SEPARATOR, Operations
from taskq.plan import Flow, Plan
from taskq.shards import QueueDirectory, layout_flow, layouts_flow, parse_shards, physical_queues, read_shards_command
from taskq.task import Task, TaskPage
from taskq.telemetry.merge import merge_queue_snapshots
from taskq.telemetry.snapshot import Snapshot, SnapshotHint, check_windows, decode_queue_snapshot


def reader_queues(names: Sequence[str] | None, known: Sequence[str], default_queue: str) -> list[str]:
    """The queues an events reader starts with, as the clients pick them: the names given (the
    default queue when none), or ``known`` for every queue."""
    if names is None:
        return list(known)
    return [check_queue_name(q) for q in names] or [default_queue]


def layout_plan(ops: Operations, queues: Sequence[str]) -> Plan[dict[str, tuple[str, ...]]]:
    """One read of the shard counts of ``queues`` (uncached: an events reader's discovery
    calls it every second): the physical queues of each sharded one."""
    names = list(queues)

    def parse(replies: list[Any]) -> dict[str, tuple[str, ...]]:
        counts = {q: parse_shards(raw) for q, raw in zip(names, replies, strict=True)}
        return {q: physical_queues(q, k) for q, k in counts.items() if k > 1}

    return Plan([read_shards_command(ops, q) for q in names], parse)


def snapshot_flow(
    ops: Operations,
    directory: QueueDirectory,
    queues: Sequence[str] | None,
    windows_s: Sequence[int],
    running_limit: int,
    lifetime: bool,
    hint: SnapshotHint | None,
) -> Flow[Snapshot]:
    """``ops.snapshot`` with each sharded queue shown as one: its base queue's and sub-queues'
    snapshots merged (:func:`taskq.telemetry.merge.merge_queue_snapshots`). Queues given:
    their shard counts (cached) first, then one snapshot of every physical queue. ``None``
    (every queue): the snapshot as before, then, when some queue is sharded, one more round
    trip for its sub-queues (one script call each, on its own slot)."""
    if queues is not None:
        names = [check_queue_name(q) for q in queues]
        layout = yield from layouts_flow(ops, directory, names)
        physical = [p for q in names for p in layout.get(q, (q,))]
        snap: Snapshot = yield from ops.snapshot(physical, windows_s, running_limit, lifetime, hint)
        parts = {q.queue: q for q in snap.queues}
    else:
        snap = yield from ops.snapshot(None, windows_s, running_limit, lifetime, hint)
        names = [q.queue for q in snap.queues if SHARD_SEPARATOR not in q.queue]
        layout = yield from layouts_flow(ops, directory, names)
        parts = {q.queue: q for q in snap.queues}
        subs = [p for q in names for p in layout.get(q, ())[1:]]
        if subs:
            windows = check_windows(windows_s)
            limit = max(0, running_limit)
            calls = [ops._snapshot_call(p, windows, limit, lifetime) for p in subs]
            replies = yield Plan(calls, list)
            parts.update((p, decode_queue_snapshot(p, windows, r)) for p, r in zip(subs, replies, strict=True))
    if not layout:
        return snap
    merged = tuple(
        merge_queue_snapshots(q, [parts[p] for p in layout[q]], running_limit) if q in layout else parts[q]
        for q in names
    )
    return dataclasses.replace(snap, queues=merged)


def inspect_flow(ops: Operations, directory: QueueDirectory, queue: str, limit: int) -> Flow[Inspection]:
    """``inspect``: one ``inspect.lua`` call per physical queue (each atomic on its own slot),
    merged into one :class:`~taskq.inspection.Inspection` of the logical queue."""
    name = check_queue_name(queue)
    check_limit(limit)
    layout = yield from layout_flow(ops, directory, name)
    if len(layout) == 1:
        one: Inspection = yield inspect_plan(ops, name, limit)
        return one
    plans = [checked_inspect_plan(ops, p, limit) for p in layout]
    replies = yield Plan([c for plan in plans for c in plan.commands], list)
    parts = [plan.parse([reply]) for plan, reply in zip(plans, replies, strict=True)]
    return merge_inspections(name, limit, parts)


def list_page_flow(
    ops: Operations, directory: QueueDirectory, queue: str, state: str, cursor: str | None, limit: int
) -> Flow[TaskPage]:
    """``list_tasks``: one page of the logical queue. Each physical queue lists its page after
    the same cursor (score, id); the pages are merged in (score, id) order, the first ``limit``
    kept, and the cursor of the last one kept is the next page's: a task that stays in its place
    is listed once, as for one queue (orders across sub-queues interleave by score)."""
    name = check_queue_name(queue)
    layout = yield from layout_flow(ops, directory, name)
    if len(layout) == 1:
        page: TaskPage = yield ops.list_page(name, state, cursor, limit)
        return page
    plans = [ops.list_page(p, state, cursor, limit) for p in layout]  # each checks state, cursor, limit
    replies = yield Plan([plan.commands[0] for plan in plans], list)
    more = False
    rows: list[tuple[float, str, str, Any]] = []
    for flat in replies:
        more = more or bool(int(flat[0]))
        rows += [(float(flat[i + 1]), str(flat[i]), str(flat[i + 1]), flat[i + 2]) for i in range(1, len(flat), 3)]
    rows.sort(key=lambda row: (row[0], row[1]))
    kept = rows[:limit]
    tasks = [Task.from_hash(_record(record), task_id) for _, task_id, _, record in kept if record]
    last = f"{kept[-1][2]}{CURSOR_SEPARATOR}{kept[-1][1]}" if kept else None
    return TaskPage(tasks, last if (more or len(rows) > limit) else None)


def _record(flat: Any) -> dict[str, str]:
    """A task record from an HGETALL inside a script reply (a flat list, or a dict)."""
    return flat if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
