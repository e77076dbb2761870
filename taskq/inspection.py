"""A read-only look inside one queue: its four sorted sets with their members and scores,
what each score means, and the record fields that say who holds what (``tq.inspect()``).

One plan (no I/O here): one call of ``inspect.lua``, which reads every place of the queue in
the same instant, so a task is never seen in two places or in none. A sharded queue
(:mod:`taskq.shards`) is read with one call per sub-queue and shown as one
(:func:`merge_inspections`). The clients run it with
their executor (docs/ARCHITECTURE.md, "One implementation, two I/O styles").

What the scores mean (``lua/lib/common.lua``): a queued task's score is ``ready + (10 -
priority) * window``, with ``ready`` the queue's FIFO clock (µs) when it became ready and
``window`` the aging window (2^48 µs, about 9 years, when priority is strict); claim takes
the lowest. A scheduled task's score is its due time (ms), a running task's its lease
deadline (ms), a dead task's the time it died (ms).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from taskq.errors import InvalidOption
from taskq.keys import check_queue_name
from taskq.ops_base import MAX_BATCH, PlanSettings, script_call
from taskq.plan import Plan

#: The window of a queue without an aging setting (lua/lib/common.lua, STRICT_WINDOW_US).
STRICT_WINDOW_US = 2**48
#: Members listed per place when no limit is given.
DEFAULT_INSPECT_LIMIT = 50

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class QueuedEntry:
    """A task waiting in ``queued``, in claim order (``position`` 0 is claimed next)."""

    id: str
    position: int
    score: int
    """Its score in the sorted set: ``ready_us + (10 - priority) * window_us``; lowest first."""
    name: str | None
    priority: int | None
    ready_us: int | None
    """The queue's FIFO clock when it became ready (µs): equal priorities leave in this order."""
    effective_priority: float | None
    """With aging: the priority a task enqueued now would need to tie with this one (its own
    priority plus one per aging window waited). None when priority is strict."""
    attempts: int


@dataclass(frozen=True, slots=True)
class ScheduledEntry:
    """A task waiting for its due time (delayed, or backing off before a retry)."""

    id: str
    due_ms: int
    due_in_ms: int
    name: str | None
    priority: int | None
    attempts: int


@dataclass(frozen=True, slots=True)
class RunningEntry:
    """A task leased to a worker: the lease runs out at ``deadline_ms`` unless a heartbeat
    pushes it on; ``token`` is the fencing token its completion must carry."""

    id: str
    deadline_ms: int
    lease_left_ms: int
    """Negative once the deadline passed (the reaper requeues it at its next run)."""
    name: str | None
    priority: int | None
    worker: str | None
    attempt: int
    token: str | None
    started_ms: int | None
    lease_ms: int | None
    """The lease length the worker asked for: each heartbeat sets the deadline this far ahead."""


@dataclass(frozen=True, slots=True)
class DeadEntry:
    """A task in the dead-letter queue."""

    id: str
    died_ms: int
    name: str | None
    priority: int | None
    attempts: int
    error_type: str | None


@dataclass(frozen=True, slots=True)
class Inspection:
    """One queue's sorted sets at one instant (server clock), each listed up to ``limit``
    members with its total size. Read by :meth:`taskq.TaskQueue.inspect`."""

    queue: str
    taken_ms: int
    limit: int
    aging_s: float | None
    """The queue's aging window (None: strict priority)."""
    queued: tuple[QueuedEntry, ...]
    queued_total: int
    scheduled: tuple[ScheduledEntry, ...]
    scheduled_total: int
    running: tuple[RunningEntry, ...]
    running_total: int
    dead: tuple[DeadEntry, ...]
    dead_total: int

    @property
    def totals(self) -> dict[str, int]:
        """Size of each place: queued, scheduled, running, dead."""
        return {
            "queued": self.queued_total,
            "scheduled": self.scheduled_total,
            "running": self.running_total,
            "dead": self.dead_total,
        }


def check_limit(limit: object) -> int:
    """Members listed per place: an integer in 1..MAX_BATCH, else :class:`InvalidOption`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
        raise InvalidOption(f"limit must be an integer in 1..{MAX_BATCH}, got {limit!r}")
    return limit


def inspect_plan(settings: PlanSettings, queue: str, limit: int = DEFAULT_INSPECT_LIMIT) -> Plan[Inspection]:
    """The plan of ``tq.inspect(queue, limit=...)``: one read-only script call."""
    return checked_inspect_plan(settings, check_queue_name(queue), check_limit(limit))


def checked_inspect_plan(settings: PlanSettings, name: str, count: int) -> Plan[Inspection]:
    """:func:`inspect_plan` for a name and limit already checked (or a sub-queue's name,
    which the queue-name check refuses: :mod:`taskq.shards`)."""
    k = settings.queue_keys(name)
    cmd = script_call("inspect", [k.queued, k.scheduled, k.running, k.dead, k.config], [k.task_prefix, count])
    return Plan([cmd], lambda replies: decode_inspection(name, count, replies[0]))


def decode_inspection(queue: str, limit: int, reply: list[Any]) -> Inspection:
    """An :class:`Inspection` from an ``inspect.lua`` reply."""
    now_ms, now_us = int(reply[0]), int(reply[1])
    aging_us = int(reply[2]) if reply[2] not in (None, "") else None
    window_us = aging_us or STRICT_WINDOW_US

    def queued(i: int, member: str, score: int, f: list[Any]) -> QueuedEntry:
        priority = _int(f[1])
        ready_us = score - (10 - priority) * window_us if priority is not None else None
        effective = None if aging_us is None else round(10 - (score - now_us) / aging_us, 3)
        return QueuedEntry(member, i, score, f[0] or None, priority, ready_us, effective, _int(f[2]) or 0)

    def scheduled(_i: int, member: str, score: int, f: list[Any]) -> ScheduledEntry:
        return ScheduledEntry(member, score, score - now_ms, f[0] or None, _int(f[1]), _int(f[2]) or 0)

    def running(_i: int, member: str, score: int, f: list[Any]) -> RunningEntry:
        return RunningEntry(
            member, score, score - now_ms, f[0] or None, _int(f[1]), f[3] or None, _int(f[2]) or 0, f[4] or None,
            _int(f[5]), _int(f[7]),
        )  # fmt: skip

    def dead(_i: int, member: str, score: int, f: list[Any]) -> DeadEntry:
        return DeadEntry(member, score, f[0] or None, _int(f[1]), _int(f[2]) or 0, f[6] or None)

    q, q_total = _place(reply[3], queued)
    s, s_total = _place(reply[4], scheduled)
    r, r_total = _place(reply[5], running)
    d, d_total = _place(reply[6], dead)
    aging_s = aging_us / 1_000_000 if aging_us is not None else None
    return Inspection(queue, now_ms, limit, aging_s, q, q_total, s, s_total, r, r_total, d, d_total)


def merge_inspections(queue: str, limit: int, parts: Sequence[Inspection]) -> Inspection:
    """One :class:`Inspection` of a sharded queue from those of its base queue (first) and its
    sub-queues (each read atomically on its own slot, so not all at one instant): each place's
    entries merged by score (queued: claim score, then id; the others by due time, lease
    deadline or time of death), the first ``limit`` kept, queued positions renumbered, totals
    summed; the aging window is the base queue's."""

    def merged(entries: Iterable[E], key: Callable[[E], tuple[int, str]]) -> tuple[E, ...]:
        return tuple(sorted(entries, key=key)[:limit])

    queued = merged((e for p in parts for e in p.queued), lambda e: (e.score, e.id))
    return Inspection(
        queue,
        max(p.taken_ms for p in parts),
        limit,
        parts[0].aging_s,
        tuple(dataclasses.replace(e, position=i) for i, e in enumerate(queued)),
        sum(p.queued_total for p in parts),
        merged((e for p in parts for e in p.scheduled), lambda e: (e.due_ms, e.id)),
        sum(p.scheduled_total for p in parts),
        merged((e for p in parts for e in p.running), lambda e: (e.deadline_ms, e.id)),
        sum(p.running_total for p in parts),
        merged((e for p in parts for e in p.dead), lambda e: (e.died_ms, e.id)),
        sum(p.dead_total for p in parts),
    )


def _place(flat: list[Any], make: Callable[[int, str, int, list[Any]], E]) -> tuple[tuple[E, ...], int]:
    entries = []
    for i, at in enumerate(range(1, len(flat), 3)):
        fields = [None if v is False else v for v in flat[at + 2]]
        entries.append(make(i, str(flat[at]), _score(flat[at + 1]), fields))
    return tuple(entries), int(flat[0])


def _score(value: Any) -> int:
    """A sorted-set score: whole numbers (the scripts write them with %.0f)."""
    try:
        return int(value)
    except ValueError:
        return int(float(value))


def _int(value: Any) -> int | None:
    return int(value) if value not in (None, "", False) else None


__all__ = [
    "DEFAULT_INSPECT_LIMIT",
    "DeadEntry",
    "Inspection",
    "QueuedEntry",
    "RunningEntry",
    "ScheduledEntry",
    "check_limit",
    "checked_inspect_plan",
    "decode_inspection",
    "inspect_plan",
    "merge_inspections",
]
