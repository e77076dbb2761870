"""Sharded hot queues: one logical queue kept in K sub-queues, each under its own hash tag,
so one busy queue spreads over K Redis Cluster masters (and works the same on one server).

* **Where K lives**: field ``shards`` of the logical queue's ``config`` hash, written by
  ``configure_queue(q, shards=K)`` (:func:`configure_flow`). Producers cache it per queue for
  :data:`SHARDS_CACHE_S` (:class:`QueueDirectory`); a worker reads it when it starts and at
  each maintenance run (:func:`selection_flow`).
* **Names**: sub-queue i of K is :func:`taskq.keys.shard_queue` (``hot~0``, ``hot~1.4``, ...);
  a task's id carries its sub-queue (``hot~1.4:0193...``), so ``get``, ``cancel``, results and
  the worker's complete/fail find it by id alone, as for any queue.
* **Producers** (:func:`prepare_flow`): a task with an idempotency key goes to the shard its
  key's CRC32 names (so the key still returns the first task's id); others round-robin.
* **Workers** (:class:`ShardedSelection`): a worker serving ``hot`` serves the base queue ``hot``
  and its K sub-queues, claiming in batches per sub-queue, starting each claim round one
  sub-queue further on, so no sub-queue starves. The base queue stays served because some
  writers enqueue by the logical name (workflow steps, schedules, a producer whose cache
  predates the change to sharded).
* **Counts** (:func:`counts_flow`): the logical queue's figures are the sums over the base
  queue and its sub-queues, shown as one queue.
* **Dead letters** (:func:`dead_page_flow`, :func:`each_dead_flow`): ``dead_letters("hot")``
  lists the sub-queues' dead merged by time of death; re-drive and purge apply to each
  sub-queue (a listed id to the sub-queue it names), and a re-driven task stays in its own.
* **Reads** (:mod:`taskq.shard_reads`; :func:`layouts_flow` for ``events``): one read per
  physical queue, each on its own slot, merged client-side into the logical queue; the
  sub-queues are named nowhere in the result but in task ids (``QueueSnapshot.shards`` gives K).
* **Refused** (typed errors below): rate limits on a sharded queue (each sub-queue would
  enforce its own, K times the rate), and changing K while the current sub-queues hold tasks.

Priority: strict within a sub-queue, approximate across them (docs/ARCHITECTURE.md, "Sharded
hot queues", has the measured inversions).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any

from taskq.errors import InvalidOption, TaskqError
from taskq.keys import SHARD_SEPARATOR, TASK_ID_SEPARATOR, check_queue_name, queue_of_task_id, shard_queue
from taskq.ops import Operations, QueueCounts
from taskq.ops_base import no_result, score_pairs
from taskq.plan import Command, Flow, Plan
from taskq.ratelimit import RateLimit
from taskq.task import Task, TaskSpec, TaskStatus, check_non_negative_int
from taskq.worker_context import QueueSelection

#: The most sub-queues a queue may have.
MAX_SHARDS = 64
#: How long a producer trusts its copy of a queue's shard count: after ``configure_queue(q,
#: shards=K)`` other producers may write with the old count for up to this long.
SHARDS_CACHE_S = 2.0
#: The field of the logical queue's config hash that holds K (absent: 1, not sharded).
SHARDS_FIELD = "shards"


class InvalidShards(InvalidOption):
    """``shards`` is not an integer from 1 to :data:`MAX_SHARDS`; nothing was written."""


class ShardsBusy(TaskqError):
    """The shard count cannot change while the queue's current sub-queues hold tasks
    (queued, scheduled, running or dead): their sub-queues would no longer be served or
    listed. Drain (and purge or re-drive the dead) first. Nothing was written."""


class NotSupportedOnShardedQueue(TaskqError):
    """Rate limits (the queue's, or a task's ``rate=``) on a sharded queue: each sub-queue
    would enforce its own limit, K times the rate asked. Nothing was written."""


def check_shards(shards: object) -> int:
    """``shards`` if it is an integer from 1 to :data:`MAX_SHARDS`, else :class:`InvalidShards`."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InvalidShards(f"shards must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    return shards


def sub_queues(queue: str, shards: int) -> tuple[str, ...]:
    """The sub-queues of ``queue`` split into ``shards`` (none when not sharded)."""
    return tuple(shard_queue(queue, i, shards) for i in range(shards)) if shards > 1 else ()


def physical_queues(queue: str, shards: int) -> tuple[str, ...]:
    """Every queue that holds ``queue``'s tasks: itself, then its sub-queues."""
    return (queue, *sub_queues(queue, shards))


def parse_shards(raw: object) -> int:
    """The shard count from the config field (absent or unreadable: 1)."""
    try:
        value = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= MAX_SHARDS else 1


def read_shards_command(ops: Operations, queue: str) -> Command:
    return Command(("HGET", ops.queue_keys(queue).config, SHARDS_FIELD))


class QueueDirectory(set[str]):
    """The queues a client has registered (a set, as before) and, per queue, its shard count
    as last read (trusted for :data:`SHARDS_CACHE_S`) and its round-robin turn."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        super().__init__(items)
        self._shards: dict[str, tuple[int, float]] = {}
        self._turns: dict[str, Iterator[int]] = {}

    def stale(self, queue: str, now_s: float) -> bool:
        entry = self._shards.get(queue)
        return entry is None or now_s - entry[1] >= SHARDS_CACHE_S

    def remember(self, queue: str, shards: int, now_s: float) -> None:
        self._shards[queue] = (shards, now_s)

    def shards(self, queue: str) -> int:
        entry = self._shards.get(queue)
        return entry[0] if entry else 1

    def turn(self, queue: str) -> int:
        turns = self._turns.get(queue)
        if turns is None:
            turns = self._turns[queue] = itertools.count(random.randrange(MAX_SHARDS))
        return next(turns)

    def route(self, spec: TaskSpec) -> TaskSpec:
        """``spec``, moved to one sub-queue of its queue if that queue is sharded."""
        shards = self.shards(spec.queue)
        if shards <= 1:
            return spec
        key = spec.idempotency_key
        index = (zlib.crc32(key.encode()) if key is not None else self.turn(spec.queue)) % shards
        sub = shard_queue(spec.queue, index, shards)
        return dataclasses.replace(
            spec, queue=sub, id=sub + TASK_ID_SEPARATOR + spec.id.partition(TASK_ID_SEPARATOR)[2]
        )


def _refresh_flow(ops: Operations, directory: QueueDirectory, queues: Iterable[str]) -> Flow[None]:
    """Read the shard count of every queue in ``queues`` whose cached copy is stale (one round
    trip, none when all are fresh)."""
    now = time.monotonic()
    stale = sorted(q for q in set(queues) if directory.stale(q, now))
    if stale:
        replies = yield Plan([read_shards_command(ops, q) for q in stale], list)
        for q, raw in zip(stale, replies, strict=True):
            directory.remember(q, parse_shards(raw), now)


def prepared(specs: list[TaskSpec], known: set[str]) -> list[TaskSpec] | None:
    """``specs`` routed (:meth:`QueueDirectory.route`) if :func:`prepare_flow` needs no round
    trip for them (every queue registered by this client, its shard count fresh); else None."""
    queues = {s.queue for s in specs}
    if not queues <= known:
        return None
    if not isinstance(known, QueueDirectory):
        return specs
    now = time.monotonic()
    if any(known.stale(q, now) for q in queues):
        return None
    return [known.route(s) for s in specs]


def prepare_flow(ops: Operations, specs: list[TaskSpec], known: set[str]) -> Flow[list[TaskSpec]]:
    """Before an enqueue: register the queues this client has not seen (``known``, updated)
    and, where ``known`` is a :class:`QueueDirectory`, read the shard counts it holds no fresh
    copy of (in the same round trip; none at all most of the time), then send each task of a
    sharded queue to one of its sub-queues."""
    ready = prepared(specs, known)
    if ready is not None:  # most of the time
        return ready
    queues = {s.queue for s in specs}
    new_queues = sorted(queues.difference(known))
    directory = known if isinstance(known, QueueDirectory) else None
    now = time.monotonic()
    stale = sorted(q for q in queues if directory.stale(q, now)) if directory is not None else []
    if new_queues or stale:
        register = ops.register_queues(new_queues).commands if new_queues else []
        replies = yield Plan([*register, *(read_shards_command(ops, q) for q in stale)], list)
        known.update(new_queues)
        if directory is not None:
            for q, raw in zip(stale, replies[len(register) :], strict=True):
                directory.remember(q, parse_shards(raw), now)
    return [directory.route(s) for s in specs] if directory is not None else specs


def counts_flow(ops: Operations, queues: Sequence[str] | None, directory: QueueDirectory) -> Flow[list[QueueCounts]]:
    """Counts of each queue (None: every registered queue), a sharded queue's summed over its
    base queue and sub-queues and shown as one."""
    if queues is not None:
        names = [check_queue_name(q) for q in queues]  # a name that is not a string is refused here
    else:
        registered: list[str] = yield ops.queues()
        names = [q for q in registered if SHARD_SEPARATOR not in q]
    if not names:
        return []
    yield from _refresh_flow(ops, directory, names)
    layout = {q: physical_queues(q, directory.shards(q)) for q in names}
    counts: list[QueueCounts] = yield ops.counts([p for q in names for p in layout[q]])
    merged: list[QueueCounts] = []
    at = 0
    for q in names:
        parts = counts[at : at + len(layout[q])]
        at += len(layout[q])
        merged.append(_sum_counts(q, parts))
    return merged


def _sum_counts(queue: str, parts: Sequence[QueueCounts]) -> QueueCounts:
    if len(parts) == 1:
        return parts[0]
    counters: dict[str, int] = {}
    for part in parts:
        for name, value in part.counters.items():
            counters[name] = counters.get(name, 0) + value
    return QueueCounts(
        queue,
        sum(p.queued for p in parts),
        sum(p.scheduled for p in parts),
        sum(p.running for p in parts),
        sum(p.dead for p in parts),
        counters,
    )


def configure_flow(
    ops: Operations,
    directory: QueueDirectory,
    queue: str,
    aging_s: float | None,
    default_priority: int | None,
    rate: RateLimit | EllipsisType | None,
    shards: int | None,
) -> Flow[None]:
    """``configure_queue``: the settings (checked by the caller) written to the queue and to
    each of its sub-queues (their scripts read their own config), and the shard count
    (None: left as it is). Refusals (:class:`InvalidShards`, :class:`ShardsBusy`,
    :class:`NotSupportedOnShardedQueue`) come before anything is written."""
    wanted = None if shards is None else check_shards(shards)
    k = ops.queue_keys(queue)
    current_raw, limit = yield Plan([read_shards_command(ops, queue), Command(("HGET", k.limits, ""))], list)
    current = parse_shards(current_raw)
    after = current if wanted is None else wanted
    limited = bool(limit) if rate is ... else rate is not None
    if after > 1 and limited:
        raise NotSupportedOnShardedQueue(
            f"queue {queue!r} would be sharded ({after} sub-queues) with a rate limit: each sub-queue would enforce "
            "its own; clear the limit (rate=None) or keep the queue unsharded. Nothing was written"
        )
    if after != current and current > 1:
        held: list[QueueCounts] = yield ops.counts(sub_queues(queue, current))
        busy = sum(c.pending + c.dead for c in held)
        if busy:
            raise ShardsBusy(
                f"queue {queue!r} has {current} sub-queues holding {busy} tasks (queued, scheduled, running or dead): "
                f"drain them before changing to {after}. Nothing was written"
            )
    commands = list(ops.configure_queue(queue, aging_s, default_priority, rate).commands)
    for sub in sub_queues(queue, after):
        commands += ops.configure_queue(sub, aging_s, default_priority).commands
    if wanted is not None:
        commands.append(
            Command(("HDEL", k.config, SHARDS_FIELD))
            if wanted == 1
            else Command(("HSET", k.config, SHARDS_FIELD, wanted))
        )
    yield Plan(commands, no_result)
    directory.remember(queue, after, time.monotonic())


def layout_flow(ops: Operations, directory: QueueDirectory, queue: str) -> Flow[tuple[str, ...]]:
    """Every queue that holds ``queue``'s tasks (its base queue, then its sub-queues)."""
    yield from _refresh_flow(ops, directory, [queue])
    return physical_queues(queue, directory.shards(queue))


def dead_page_flow(ops: Operations, directory: QueueDirectory, queue: str, limit: int, offset: int) -> Flow[list[Task]]:
    """Dead tasks of a queue, oldest death first, over its sub-queues merged by time of death."""
    check_non_negative_int("limit", limit)
    check_non_negative_int("offset", offset, upper=2**53)
    layout = yield from layout_flow(ops, directory, queue)
    if limit == 0:
        return []
    if len(layout) == 1:
        ids: list[str] = yield ops.list_ids(queue, TaskStatus.DEAD, offset, limit)
    else:
        replies = yield Plan(
            [Command(("ZRANGE", ops.queue_keys(q).dead, 0, offset + limit - 1, "WITHSCORES")) for q in layout], list
        )
        merged = sorted((score, task_id) for reply in replies for task_id, score in score_pairs(reply))
        ids = [task_id for _, task_id in merged[offset : offset + limit]]
    if not ids:
        return []
    tasks: list[Task | None] = yield ops.get_many(ids)
    return [t for t in tasks if t is not None]


#: A dead-letter action on one (sub-)queue: (queue, ids or None) -> how many tasks it moved.
DeadAction = Callable[[str, "Iterable[str] | None"], Flow[int]]


def each_dead_flow(
    ops: Operations, directory: QueueDirectory, queue: str, ids: Iterable[str] | None, action: DeadAction
) -> Flow[int]:
    """Re-drive or purge (``action``) over a queue's base queue and sub-queues: listed ids go
    to the sub-queue their id names; a filter, or all, applies to each. Returns the sum."""
    layout = yield from layout_flow(ops, directory, queue)
    if len(layout) == 1 or isinstance(ids, (str, bytes)) or (ids is not None and not isinstance(ids, Iterable)):
        return (yield from action(queue, ids))  # a bad ids argument is refused there, as unsharded
    groups: dict[str, list[str]] = {q: [] for q in layout}
    for task_id in ids if ids is not None else ():
        groups[_sub_queue_of(task_id, queue, layout)].append(task_id)
    total = 0
    for q, chosen in groups.items():
        if ids is None or chosen or q == queue:
            total += yield from action(q, None if ids is None else chosen)
    return total


def _sub_queue_of(task_id: object, queue: str, layout: Sequence[str]) -> str:
    try:
        named = queue_of_task_id(task_id)  # type: ignore[arg-type]
    except TaskqError:
        return queue  # not a task id: the base queue's action says so, as unsharded
    return named if named in layout else queue


def layouts_flow(ops: Operations, directory: QueueDirectory, queues: Iterable[str]) -> Flow[dict[str, tuple[str, ...]]]:
    """The physical queues of each sharded queue among ``queues`` (base queue first); queues
    not sharded are left out. Reads the shard counts not cached (one round trip at most)."""
    names = sorted(set(queues))
    yield from _refresh_flow(ops, directory, names)
    return {q: physical_queues(q, directory.shards(q)) for q in names if directory.shards(q) > 1}


@dataclass(frozen=True, slots=True)
class ShardedSelection(QueueSelection):
    """A worker's queues with each sharded one expanded: ``queues`` holds every queue claimed
    from (for the wake-ups, reaper and promoter), ``groups`` each served queue's base queue and
    sub-queues, ``served`` the names asked for."""

    served: tuple[str, ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()
    _turns: Iterator[int] = field(default_factory=itertools.count, compare=False, repr=False)

    def claim_order(self, rng: random.Random) -> Sequence[str]:
        """The served queues in their order (ordered or weighted, as unsharded), each replaced by
        its group, rotated one step further every claim round."""
        turn = next(self._turns)
        by_name = dict(zip(self.served, self.groups, strict=True))
        order = QueueSelection(self.served, self.weights).claim_order(rng)
        out: list[str] = []
        for name in order:
            group = by_name[name]
            start = turn % len(group)
            out += group[start:] + group[:start]
        return out


def served_queues(selection: QueueSelection) -> tuple[str, ...]:
    """The queues a worker was asked to serve (a sharded one by its own name, not its
    sub-queues): what its registration shows."""
    return selection.served if isinstance(selection, ShardedSelection) else selection.queues


def selection_flow(
    ops: Operations, selection: QueueSelection, rated_queues: Iterable[str] = ()
) -> Flow[QueueSelection]:
    """A worker's selection with its sharded queues expanded (read when it starts and at each
    maintenance run, ``WorkerUpkeep._follow_shards``);
    unchanged when none is sharded. A task rate limit on a sharded queue is refused."""
    replies = yield Plan([read_shards_command(ops, q) for q in selection.queues], list)
    shards = {q: parse_shards(raw) for q, raw in zip(selection.queues, replies, strict=True)}
    if all(k == 1 for k in shards.values()):
        return selection
    rated = sorted(q for q in set(rated_queues) if shards.get(q, 1) > 1)
    if rated:
        raise NotSupportedOnShardedQueue(
            f"tasks with rate= on sharded queue(s) {', '.join(rated)}: each sub-queue would enforce its own limit"
        )
    groups = tuple(physical_queues(q, shards[q]) for q in selection.queues)
    return ShardedSelection(
        tuple(p for g in groups for p in g),
        selection.weights,
        served=selection.queues,
        groups=groups,
    )


def rated_queues(registry: Mapping[str, Any]) -> set[str]:
    """The queues of the registered tasks that carry a rate limit (``@tq.task(rate=...)``)."""
    return {d.queue for d in registry.values() if getattr(d, "rate", None) is not None}


__all__ = [
    "MAX_SHARDS",
    "SHARDS_CACHE_S",
    "InvalidShards",
    "NotSupportedOnShardedQueue",
    "QueueDirectory",
    "ShardedSelection",
    "ShardsBusy",
    "check_shards",
    "configure_flow",
    "counts_flow",
    "dead_page_flow",
    "each_dead_flow",
    "layouts_flow",
    "physical_queues",
    "prepare_flow",
    "prepared",
    "selection_flow",
    "served_queues",
    "sub_queues",
]
