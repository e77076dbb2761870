"""Every producer and worker operation as a *plan*: the Redis commands to send and a
function that turns their replies into a result. No I/O here.

The sync client, the async client and the worker all execute the same plans, so the
logic exists once and the clients are thin (docs/ARCHITECTURE.md, "One implementation,
two I/O styles"). A plan's commands are independent of each other and may be pipelined in
one round trip.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType, MappingProxyType
from typing import Any

from taskq import periodic_snapshot as periodic
from taskq.backoff import Backoff
from taskq.errors import InvalidOption, TaskNotFound, TaskqError
from taskq.keys import queue_of_task_id
from taskq.ops_base import (
    DEFAULT_EVENTS_MAXLEN,
    FORGET_WORKERS_AFTER_MS,
    MAX_BATCH,
    PlanSettings,
    cached_queue_keys,
    chunks,
    first_reply,
    reply_error,
    score_pairs,
    script_call,
    time_ms,
)
from taskq.plan import Command, Flow, Plan
from taskq.ratelimit import RateLimit
from taskq.registry import REGISTRY_RETENTION_MS, RegisteredTask
from taskq.scripts import load_script
from taskq.task import (
    DEFAULT_BACKOFF,
    Task,
    TaskPage,
    TaskSpec,
    TaskStatus,
)
from taskq.telemetry import (
    DEFAULT_WINDOWS_S,
    Snapshot,
    SnapshotHint,
    WorkerSnapshot,
    check_windows,
    decode_queue_snapshot,
    decode_worker,
)
from taskq.worker_ops import ClaimedTask, Completion, Failure, WorkerPlans

__all__ = [
    "DEFAULT_EVENTS_MAXLEN",
    "FORGET_WORKERS_AFTER_MS",
    "MAX_BATCH",
    "ClaimedTask",
    "Completion",
    "Failure",
    "Operations",
    "PlanSettings",
    "QueueCounts",
    "chunks",
    "reply_error",
    "script_call",
]


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """How many tasks are in each place of a queue, and its lifetime counters."""

    queue: str
    queued: int
    scheduled: int
    running: int
    dead: int
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        """Tasks not finished: queued, scheduled (delayed or awaiting retry) and running."""
        return self.queued + self.scheduled + self.running


@dataclass(frozen=True, slots=True)
class Operations(WorkerPlans):
    """Builds every plan for one key prefix and one set of telemetry/retention settings
    (:class:`~taskq.ops_base.PlanSettings`): the producer's, the registry's and the
    telemetry reads here; the worker's in :class:`~taskq.worker_ops.WorkerPlans`.
    """

    # -- producer -------------------------------------------------------------------

    def _enqueue_call(self, queue: str, specs: Sequence[TaskSpec]) -> Command:
        args: list[Any] = list(_enqueue_head(self, queue))
        for spec in specs:
            args += (
                spec.id,
                spec.name,
                spec.args_json,
                "" if spec.kwargs_json == "{}" else spec.kwargs_json,
                "" if spec.priority is None else spec.priority,
                spec.delay_ms,
                spec.max_retries,
                spec.timeout_ms or "",
                spec.result_ttl_s,
                *(("", "", "", "") if spec.backoff is DEFAULT_BACKOFF else _backoff_args(spec.backoff)),  # unhashed
                spec.idempotency_key or "",
                spec.meta_json,
            )
        return Command(tuple(args), load_script("enqueue"))

    def enqueue(self, specs: Sequence[TaskSpec]) -> Plan[list[str]]:
        """Enqueue tasks: one script call per queue (and per MAX_BATCH tasks), pipelined.
        The result is each task's id, in order (an earlier task's id where its idempotency
        key was already used)."""
        n, queue = len(specs), specs[0].queue if specs else ""
        if n == 1:  # a single enqueue: one call, its reply's first id
            return Plan([self._enqueue_call(queue, specs)], lambda replies: [str(replies[0][0])])
        if 0 < n <= MAX_BATCH and all(s.queue == queue for s in specs):  # one call, its ids at even places
            return Plan([self._enqueue_call(queue, specs)], lambda replies: [str(i) for i in replies[0][: 2 * n : 2]])
        groups: dict[str, list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault(spec.queue, []).append(i)
        commands: list[Command] = []
        where: list[tuple[int, int]] = [(0, 0)] * len(specs)  # spec -> (command, position)
        for queue, indexes in groups.items():
            for chunk in chunks(indexes):
                for position, i in enumerate(chunk):
                    where[i] = (len(commands), position)
                commands.append(self._enqueue_call(queue, [specs[i] for i in chunk]))

        return Plan(commands, lambda replies: [str(replies[c][2 * p]) for c, p in where])

    def register_queues(self, queues: Sequence[str]) -> Plan[int]:
        return Plan([Command(("SADD", self.keys.queues, *queues))], first_reply)

    def get(self, task_id: str) -> Plan[Task]:
        k = self.queue_keys(queue_of_task_id(task_id))

        def parse(replies: list[Any]) -> Task:
            raw = replies[0]
            if not raw:
                raise TaskNotFound(f"no task {task_id}: it never existed, or its record expired after its TTL")
            return Task.from_hash(raw, task_id)

        return Plan([Command(("HGETALL", k.task(task_id)))], parse)

    def get_many(self, task_ids: Sequence[str]) -> Plan[list[Task | None]]:
        cmds = [Command(("HGETALL", self.queue_keys(queue_of_task_id(t)).task(t))) for t in task_ids]
        return Plan(cmds, lambda rs: [Task.from_hash(r, t) if r else None for r, t in zip(rs, task_ids, strict=True)])

    def cancel(self, task_id: str) -> Plan[str]:
        k = self.queue_keys(queue_of_task_id(task_id))
        cmd = script_call(
            "cancel",
            [k.task(task_id), k.queued, k.scheduled, *k.telemetry],
            [task_id, self.tel, k.idem_prefix],
        )
        return Plan([cmd], first_reply)

    def configure_queue(
        self,
        queue: str,
        aging_s: float | None,
        default_priority: int | None,
        rate: RateLimit | EllipsisType | None = ...,
    ) -> Plan[Any]:
        """Set (or, with None, clear) a queue's aging window, default priority and rate limit
        (``...``: the rate limit stays as it is)."""
        k = self.queue_keys(queue)
        cmds = []
        if rate is None:
            cmds.append(Command(("HDEL", k.limits, "")))
        elif isinstance(rate, RateLimit):
            cmds.append(Command(("HSET", k.limits, "", rate.spec())))
        cmds += [
            Command(("HDEL", k.config, field)) if value is None else Command(("HSET", k.config, field, value))
            for field, value in (
                ("aging_us", None if aging_s is None else int(aging_s * 1_000_000)),
                ("default_priority", default_priority),
            )
        ]
        return Plan(cmds, lambda rs: None)

    def counts(self, queues: Sequence[str]) -> Plan[list[QueueCounts]]:
        cmds: list[Command] = []
        for q in queues:
            k = self.queue_keys(q)
            cmds += [
                Command(("ZCARD", k.queued)),
                Command(("ZCARD", k.scheduled)),
                Command(("ZCARD", k.running)),
                Command(("ZCARD", k.dead)),
                Command(("HGETALL", k.stats)),
            ]

        def parse(rs: list[Any]) -> list[QueueCounts]:
            out = []
            for i, q in enumerate(queues):
                r = rs[i * 5 : i * 5 + 5]
                counters = {name: int(v) for name, v in (r[4] or {}).items()}
                out.append(QueueCounts(q, int(r[0]), int(r[1]), int(r[2]), int(r[3]), counters))
            return out

        return Plan(cmds, parse)

    def queues(self) -> Plan[list[str]]:
        return Plan([Command(("SMEMBERS", self.keys.queues))], lambda rs: sorted(rs[0]))

    def list_ids(self, queue: str, place: TaskStatus, offset: int, limit: int) -> Plan[list[str]]:
        """Ids in one place of a queue, in the order they will leave it."""
        zset = self._place_key(queue, place.value)
        return Plan([Command(("ZRANGE", zset, offset, offset + limit - 1))], first_reply)

    def list_page(self, queue: str, state: str, cursor: str | None, limit: int) -> Plan[TaskPage]:
        """One page of the tasks in one place of a queue ('queued' in claim order, 'scheduled'
        by due time, 'running' by lease deadline, 'dead' by time of death), after ``cursor``
        (a page's ``next_cursor``; None: from the start), read atomically (list_page.lua)."""
        zset = self._place_key(queue, state)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH:
            raise InvalidOption(f"limit must be an integer in 1..{MAX_BATCH}, got {limit!r}")
        after_score, after_id = _parse_cursor(cursor)
        k = self.queue_keys(queue)
        cmd = script_call("list_page", [zset], [k.task_prefix, after_score, after_id, limit])

        def parse(replies: list[Any]) -> TaskPage:
            flat = replies[0]
            tasks: list[Task] = []
            last = ""
            for i in range(1, len(flat), 3):
                task_id, score, record = str(flat[i]), str(flat[i + 1]), flat[i + 2]
                last = f"{score}{CURSOR_SEPARATOR}{task_id}"
                if record:
                    tasks.append(Task.from_hash(_pairs(record), task_id))
            return TaskPage(tasks, last if int(flat[0]) else None)

        return Plan([cmd], parse)

    def _place_key(self, queue: str, state: str) -> str:
        k = self.queue_keys(queue)
        places = {"queued": k.queued, "scheduled": k.scheduled, "running": k.running, "dead": k.dead}
        if not isinstance(state, str) or state not in places:
            raise InvalidOption(f"state must be one of {', '.join(places)}, got {state!r}")
        return places[state]

    def redrive(self, queue: str, ids: Sequence[str] | None, limit: int = MAX_BATCH) -> Plan[list[str]]:
        """Re-drive the given dead task ids, or (ids=None) up to ``limit`` oldest."""
        k = self.queue_keys(queue)
        mode = "oldest" if ids is None else "ids"
        cmd = script_call(
            "redrive",
            [k.dead, k.queued, k.config, *k.telemetry],
            [k.task_prefix, k.idem_prefix, self.tel, self.wake(k), mode, limit, *(ids or [])],
        )
        return Plan([cmd], first_reply)

    def purge_dead(self, queue: str, ids: Sequence[str] | None, limit: int = MAX_BATCH) -> Plan[int]:
        k = self.queue_keys(queue)
        mode = "oldest" if ids is None else "ids"
        cmd = script_call(
            "purge_dead", [k.dead, *k.telemetry], [k.task_prefix, k.idem_prefix, self.tel, mode, limit, *(ids or [])]
        )
        return Plan([cmd], lambda rs: int(rs[0]))

    # -- registries ---------------------------------------------------------------------

    def registered_tasks(self, retention_ms: int = REGISTRY_RETENTION_MS) -> Flow[dict[str, RegisteredTask]]:
        """The tasks live or recent workers published (see :mod:`taskq.registry`); entries
        older than ``retention_ms`` by the server's clock are left out and deleted."""
        g = self.keys
        now_ms, raw = yield Plan(
            [Command(("TIME",)), Command(("HGETALL", g.tasks))], lambda rs: (time_ms(rs[0]), rs[1] or {})
        )
        known: dict[str, RegisteredTask] = {}
        stale: list[str] = []
        for name, data in raw.items():
            try:
                entry = RegisteredTask.from_json(name, data)
            except (ValueError, KeyError, TypeError, TaskqError):  # not ours to read: ignored, kept
                continue
            if now_ms - entry.last_seen_ms > retention_ms:
                stale.append(name)
            else:
                known[name] = entry
        if stale:
            yield Plan([Command(("HDEL", g.tasks, *stale))], first_reply)
        return dict(sorted(known.items()))

    def workers(self, forget_after_ms: int = FORGET_WORKERS_AFTER_MS) -> Flow[list[WorkerSnapshot]]:
        """Registered workers (alive, stale, or gone within ``forget_after_ms``), decoded as in a
        snapshot (one decoder: :func:`taskq.telemetry.decode_worker`); older gone ones are dropped."""
        g = self.keys
        now_ms, pairs = yield Plan(
            [Command(("TIME",)), Command(("ZRANGE", g.workers, 0, -1, "WITHSCORES"))],
            lambda rs: (time_ms(rs[0]), score_pairs(rs[1])),
        )
        if not pairs:
            return []
        raws: list[Any] = yield Plan([Command(("HGETALL", g.worker(i))) for i, _ in pairs], list)
        out: list[WorkerSnapshot] = []
        stale: list[str] = []
        for (worker_id, score), raw in zip(pairs, raws, strict=True):
            if not raw and now_ms - score > forget_after_ms:
                stale.append(worker_id)
            else:
                out.append(decode_worker(worker_id, score, raw, now_ms))
        if stale:
            yield Plan([Command(("ZREM", g.workers, *stale))], first_reply)
        return out

    # -- telemetry ------------------------------------------------------------------

    def _snapshot_call(self, queue: str, windows_s: Sequence[int], running_limit: int, lifetime: bool) -> Command:
        return _snapshot_command(self.prefix, queue, tuple(windows_s), running_limit, lifetime)

    def snapshot(
        self,
        queues: Sequence[str] | None = None,
        windows_s: Sequence[int] = DEFAULT_WINDOWS_S,
        running_limit: int = 5,
        lifetime: bool = True,
        hint: SnapshotHint | None = None,
    ) -> Flow[Snapshot]:
        """Everything a dashboard shows: the server time, the worker registry (and the queue
        names, when ``queues`` is None), one snapshot script per queue and each worker's
        registration, pipelined. The scripts and registrations it can name up front (the
        queues given, or those and the workers ``hint`` remembers from the previous snapshot)
        go in the first round trip; a second one reads whatever that missed, so a dashboard
        polling with the same hint needs one round trip while nothing new appears."""
        windows = check_windows(windows_s)
        limit = max(0, running_limit)
        given = None if queues is None else [self.queue_keys(q).queue for q in queues]
        g = self.keys
        guess_queues = given if given is not None else ((hint.queues or []) if hint is not None else [])
        guess_workers = list(hint.workers) if hint is not None else []
        first = [Command(("TIME",)), Command(("ZRANGE", g.workers, 0, -1, "WITHSCORES"))]
        if given is None:
            first.append(Command(("SMEMBERS", g.queues)))
        head = len(first)
        first += [self._snapshot_call(q, windows, limit, lifetime) for q in guess_queues]
        first += [Command(("HGETALL", g.worker(w))) for w in guess_workers]
        known = hint.limit_names if hint is not None else {}
        extra_at = len(first)  # then the schedules and rate limits (taskq.periodic_snapshot)
        first += periodic.schedule_commands(self)
        extras = {q: periodic.queue_commands(self, q, known.get(q, ())) for q in guess_queues}
        first += [c for cmds in extras.values() for c in cmds]
        replies: list[Any] = yield Plan(first, list)
        extra_replies = periodic.split_replies(replies[extra_at + 1 :], extras)
        schedules_raw = replies[extra_at]
        now_ms = time_ms(replies[0])
        names = given if given is not None else sorted(replies[2])
        registry = [(w, beat) for w, beat in score_pairs(replies[1]) if now_ms - beat <= FORGET_WORKERS_AFTER_MS]
        by_queue = dict(zip(guess_queues, replies[head : head + len(guess_queues)], strict=True))
        by_worker = dict(zip(guess_workers, replies[head + len(guess_queues) : extra_at], strict=True))
        missed_queues = [q for q in names if q not in by_queue]
        missed_workers = [w for w, _ in registry if w not in by_worker]
        if missed_queues or missed_workers:
            cmds = [self._snapshot_call(q, windows, limit, lifetime) for q in missed_queues]
            cmds += [Command(("HGETALL", g.worker(w))) for w in missed_workers]
            more = {q: periodic.queue_commands(self, q, known.get(q, ())) for q in missed_queues}
            cmds += [c for extra in more.values() for c in extra]
            rs: list[Any] = yield Plan(cmds, list)
            by_queue.update(zip(missed_queues, rs, strict=False))
            by_worker.update(zip(missed_workers, rs[len(missed_queues) :], strict=False))
            extra_replies.update(periodic.split_replies(rs[len(missed_queues) + len(missed_workers) :], more))
        if hint is not None:
            if given is None:
                hint.queues = names
            hint.workers = [w for w, _ in registry]
        queue_snaps = tuple(decode_queue_snapshot(q, windows, by_queue[q]) for q in names)
        taken_ms = queue_snaps[0].taken_ms if queue_snaps else now_ms
        workers = [decode_worker(w, beat, by_worker[w], taken_ms) for w, beat in registry]
        limits, states = {}, {}
        for q in names:
            limits[q], q_states, names_seen = periodic.decode_queue(extra_replies[q], known.get(q, ()), taken_ms)
            states.update(q_states)
            if hint is not None:
                hint.limit_names[q] = names_seen
        return Snapshot(
            taken_ms,
            queue_snaps,
            tuple(sorted(workers, key=lambda ws: ws.id)),
            periodic.decode_schedules(schedules_raw, states, taken_ms),
            MappingProxyType({q: v for q, v in limits.items() if v}),
        )

    def event_stream_tails(self, queues: Sequence[str]) -> Plan[dict[str, str]]:
        """The id of the newest entry of each queue's events stream ('' when empty)."""
        cmds = [Command(("XREVRANGE", self.queue_keys(q).events, "+", "-", "COUNT", 1)) for q in queues]

        def tails(rs: list[Any]) -> dict[str, str]:
            return {q: (str(r[0][0]) if r else "") for q, r in zip(queues, rs, strict=True)}

        return Plan(cmds, tails)

    def read_events(
        self, positions: Sequence[tuple[str, str]], count: int, block_ms: int | None, together: bool
    ) -> Plan[dict[str, list[tuple[str, Mapping[str, str]]]]]:
        """Read the entries after each (queue, stream id), as {queue: [(stream id, fields)]}.
        ``together``: one XREAD over every stream, which ``block_ms`` makes wait for the
        first new entry (a Redis Cluster refuses it when the queues live on different
        slots: the parse raises that error); otherwise one XREAD per queue, pipelined."""
        by_key = {self.queue_keys(q).events: q for q, _ in positions}
        block = ("BLOCK", block_ms) if block_ms is not None else ()
        if together:
            keys = list(by_key)
            ids = [after for _, after in positions]
            cmds = [Command(("XREAD", "COUNT", count, *block, "STREAMS", *keys, *ids))]
        else:
            cmds = [Command(("XREAD", "COUNT", count, *block, "STREAMS", k, after)) for k, (_, after) in
                    zip(by_key, positions, strict=True)]  # fmt: skip

        def entries(rs: list[Any]) -> dict[str, list[tuple[str, Mapping[str, str]]]]:
            out: dict[str, list[tuple[str, Mapping[str, str]]]] = {}
            for reply in rs:
                error = reply_error(reply)
                if error is not None:
                    raise error
                for key, stream in _streams(reply):
                    out[by_key[key]] = stream
            return out

        return Plan(cmds, entries, errors_inline=True)


@functools.lru_cache(maxsize=1024)
def _snapshot_command(
    prefix: str, queue: str, windows_s: tuple[int, ...], running_limit: int, lifetime: bool
) -> Command:
    """The snapshot script call of one queue (the same every poll, so built once)."""
    k = cached_queue_keys(prefix, queue)
    return script_call(
        "snapshot",
        [k.queued, k.scheduled, k.running, k.dead, k.config, k.windows, *k.telemetry],
        [k.task_prefix, running_limit, int(lifetime), *windows_s],
    )


@functools.lru_cache(maxsize=4096)
def _enqueue_head(settings: PlanSettings, queue: str) -> tuple[Any, ...]:
    """The EVALSHA arguments of enqueue.lua that are the same for every call on a queue (and settings)."""
    k = settings.queue_keys(queue)
    keys = [k.queued, k.scheduled, k.config, *k.telemetry, k.running, k.limits, k.idle]
    tail = (k.task_prefix, k.idem_prefix, settings.tel, queue, settings.wake(k))
    return ("EVALSHA", load_script("enqueue").sha, len(keys), *keys, *tail)


@functools.lru_cache(maxsize=256)
def _backoff_args(b: Backoff) -> tuple[Any, ...]:
    """A task's backoff as enqueue.lua takes it: four empty strings for the default (the record leaves it out)."""
    if b == DEFAULT_BACKOFF:
        return ("", "", "", "")
    return (int(b.base_s * 1000), int(b.cap_s * 1000), int(b.min_s * 1000), repr(b.jitter))


#: Between the score and the id in a list_tasks cursor (a score never contains it).
CURSOR_SEPARATOR = "/"


def _parse_cursor(cursor: str | None) -> tuple[str, str]:
    """(score, id) of a list_tasks cursor; ('-inf', '') for None."""
    if cursor is None:
        return "-inf", ""
    score, sep, task_id = cursor.partition(CURSOR_SEPARATOR) if isinstance(cursor, str) else ("", "", "")
    try:
        valid = bool(sep and task_id) and math.isfinite(float(score))
    except ValueError:
        valid = False
    if not valid:
        raise InvalidOption(f"cursor must be a next_cursor from list_tasks, got {cursor!r}")
    return score, task_id


def _pairs(flat: Any) -> dict[str, str]:
    """A hash from a flat [field, value, ...] reply (or one redis-py already made a dict)."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _streams(reply: Any) -> list[tuple[str, list[tuple[str, Mapping[str, str]]]]]:
    """(stream key, entries) pairs of an XREAD reply: None, [[key, entries], ...] (RESP2) or
    {key: entries} (RESP3)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    out: list[tuple[str, list[tuple[str, Mapping[str, str]]]]] = []
    for key, entries in pairs:
        if entries and isinstance(entries[0], list) and entries[0] and isinstance(entries[0][0], list):
            entries = entries[0]  # RESP3 wraps the entries once more
        out.append((str(key), [(str(stream_id), dict(fields or {})) for stream_id, fields in entries]))
    return out
