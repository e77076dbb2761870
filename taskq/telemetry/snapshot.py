"""The snapshot model (:class:`Snapshot`, :class:`QueueSnapshot`, :class:`WorkerSnapshot`)
and the decoding of ``snapshot.lua``'s replies and of worker registrations into it.
No I/O: :meth:`taskq.ops.Operations.snapshot` builds the plans that read them.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from taskq.errors import InvalidOption
from taskq.ratelimit import LimiterState
from taskq.schedules import ScheduleInfo
from taskq.telemetry.histogram import BUCKET_VALUES_MS, LATENCY_METRICS

#: The windows a snapshot reports by default, seconds.
DEFAULT_WINDOWS_S = (10, 60, 900)
MAX_WINDOW_S = 900
"""The longest window, seconds, a snapshot can report throughput and percentiles over."""
#: The counters every queue keeps, in display order.
COUNTERS = (
    "enqueued",
    "started",
    "succeeded",
    "failed",
    "retried",
    "dead",
    "cancelled",
    "requeued",
    "released",
    "redriven",
    "purged",
)


class WorkerHealth(enum.StrEnum):
    """A worker's health from its heartbeat: alive; stale (heartbeat older than two
    intervals: busy, stuck or dying); gone (its registration expired: it is dead)."""

    ALIVE = "alive"
    STALE = "stale"
    GONE = "gone"


class Latency(NamedTuple):
    """Percentiles of one latency metric over one window, in milliseconds (None when the
    window saw no observation). Each is within :data:`RELATIVE_ERROR` of the true value.

    (Latency, WindowStats and RunningTask are NamedTuples: immutable like the dataclasses
    around them, and several times cheaper to build; a snapshot holds hundreds.)"""

    samples: int
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None

    def percentile_ms(self, name: str) -> float | None:
        """``name`` is one of 'p50', 'p90', 'p99', 'p999'."""
        value: float | None = getattr(self, f"{name}_ms")
        return value


NO_LATENCY = Latency(0)


class WindowStats(NamedTuple):
    """What happened in a queue over the last ``length_s`` whole seconds, up to the start of
    the current second (so the figures change once a second, not at every read).

    ``start_ms``/``end_ms`` bound the time really covered, which ``rate`` divides by: exactly
    ``length_s`` for windows up to 60 s; for longer ones the start may move to the nearest
    10-second checkpoint.
    """

    length_s: int
    start_ms: int
    end_ms: int
    counts: Mapping[str, int]
    """How much each counter rose in the window (counters that did not rise are left out)."""
    latency: Mapping[str, Latency]

    @property
    def span_s(self) -> float:
        """Seconds the window covers."""
        return (self.end_ms - self.start_ms) / 1000

    def total(self, name: str) -> int:
        """How much counter ``name`` rose in the window (0 if it did not)."""
        return self.counts.get(name, 0)

    def rate(self, name: str = "succeeded") -> float:
        """Counter ``name`` per second over the window."""
        return self.total(name) / self.span_s if self.span_s > 0 else 0.0

    @property
    def wait(self) -> Latency:
        """Queue wait: from ready (enqueued, due, requeued) to claimed."""
        return self.latency.get("wait", NO_LATENCY)

    @property
    def run(self) -> Latency:
        """Run time of attempts, failed ones included: from claimed to finished."""
        return self.latency.get("run", NO_LATENCY)

    @property
    def e2e(self) -> Latency:
        """End to end, of tasks that succeeded: from enqueued to finished."""
        return self.latency.get("e2e", NO_LATENCY)


class RunningTask(NamedTuple):
    """A leased task, as the snapshot saw it (ages are relative to the snapshot time)."""

    id: str
    name: str
    worker: str
    attempt: int
    priority: int | None
    started_ms: int | None
    deadline_ms: int
    age_ms: int | None
    """Time since this attempt was claimed."""
    lease_left_ms: int
    """Time until the lease expires; negative once overdue (the reaper will requeue it)."""
    progress: dict[str, Any] | None = None
    """The task's last ``current_task().progress(...)``: {done, total, message}."""


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """One queue at one instant: where its tasks are, its counters, its rates and latency."""

    queue: str
    taken_ms: int
    """When the queue was read (the server clock)."""
    queued: int
    by_priority: Mapping[int, int]
    """Queued tasks per priority, 10 (most urgent) first; priorities with none are left out."""
    scheduled: int
    next_due_ms: int | None
    running: int
    overdue: int
    """Running tasks whose lease has expired but that the reaper has not requeued yet."""
    dead: int
    counters: Mapping[str, int]
    """Lifetime counters (every name in :data:`COUNTERS`, 0 if never incremented)."""
    latency: Mapping[str, Latency]
    """Lifetime latency per metric ('wait', 'run', 'e2e'), up to the start of this second
    (all counts 0 when the snapshot was taken with ``lifetime=False``)."""
    windows: tuple[WindowStats, ...]
    running_tasks: tuple[RunningTask, ...]
    """Up to the requested number of running tasks, soonest lease deadline first."""
    aging_s: float | None
    default_priority: int | None
    events_length: int
    """Entries in the events stream (each holds one or more events)."""
    retained_finished: int | None = None
    """About how many finished task records Redis keeps now, each until its TTL: the dead ones
    (exact) plus the succeeded and cancelled ones finished within the client's result TTL,
    estimated as their rate over the longest window times that TTL, at most all that ever
    finished (taskq.telemetry.memory). None where it was not computed."""
    shards: int = 1
    """Sub-queues a sharded queue is kept in (``configure_queue(q, shards=K)``; 1: not
    sharded). The figures above are then those of the base queue and its K sub-queues merged
    (:func:`merge_queue_snapshots`)."""

    @property
    def pending(self) -> int:
        """Tasks not finished: queued, scheduled and running."""
        return self.queued + self.scheduled + self.running

    def window(self, length_s: int) -> WindowStats:
        """The window of ``length_s`` seconds (one the snapshot was asked for)."""
        for w in self.windows:
            if w.length_s == length_s:
                return w
        raise KeyError(f"no {length_s}-second window in this snapshot (have {[w.length_s for w in self.windows]})")


@dataclass(frozen=True, slots=True)
class WorkerSnapshot:
    """A registered worker and its health."""

    id: str
    health: WorkerHealth
    heartbeat_ms: int
    heartbeat_age_ms: int
    host: str | None = None
    pid: int | None = None
    queues: tuple[str, ...] = ()
    concurrency: int | None = None
    started_ms: int | None = None
    interval_ms: int | None = None
    processed: int | None = None
    failed: int | None = None
    current: tuple[str, ...] = ()
    """Ids of the tasks it runs (as of its last heartbeat)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a dashboard shows, read in one or two round trips (:meth:`TaskQueue.snapshot`).
    Times are Unix milliseconds by the Redis server's clock."""

    taken_ms: int
    queues: tuple[QueueSnapshot, ...]
    workers: tuple[WorkerSnapshot, ...]
    #: Every schedule: its definition, last fire time and task, next fire time (taskq.schedules).
    schedules: tuple[ScheduleInfo, ...] = ()
    #: Per queue with rate limits: each limiter and when it next lets a task run (taskq.ratelimit).
    rate_limits: Mapping[str, tuple[LimiterState, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: The Redis server's ``used_memory`` (INFO memory; summed over a cluster's nodes), or None
    #: where the server has no INFO (fakeredis) or refused it.
    used_memory_bytes: int | None = None

    def queue(self, name: str) -> QueueSnapshot:
        """The snapshot of queue ``name`` (KeyError if it was not asked for)."""
        for q in self.queues:
            if q.queue == name:
                return q
        raise KeyError(f"queue {name!r} is not in this snapshot")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (for the API, ``taskq stats --json`` and notebooks)."""
        result: dict[str, Any] = to_plain(self)
        return result


@dataclass(slots=True)
class SnapshotHint:
    """What the previous snapshot found: the queue names (when it read every queue) and the
    worker ids. A client keeps one, so that a dashboard's next snapshot can send every read in
    one round trip; a wrong guess only costs a second round trip for what was missed."""

    queues: list[str] | None = None
    workers: list[str] = field(default_factory=list)
    limit_names: dict[str, list[str]] = field(default_factory=dict)  # per queue: task names with a rate limit


def to_plain(value: Any) -> Any:
    """Dataclasses, named tuples, mappings, enums and tuples as plain dicts, lists and scalars."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        plain = {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, QueueSnapshot):
            plain["pending"] = value.pending
        return plain
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        plain = {name: to_plain(v) for name, v in value._asdict().items()}
        if isinstance(value, WindowStats):
            plain["span_s"] = value.span_s
        return plain
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def check_windows(windows_s: Iterable[int]) -> tuple[int, ...]:
    """Window lengths in seconds: integers 1..900, no repeats."""
    out = tuple(windows_s)
    for w in out:
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WINDOW_S:
            raise InvalidOption(f"a window is a whole number of seconds in 1..{MAX_WINDOW_S}, got {w!r}")
    if len(set(out)) != len(out):
        raise InvalidOption(f"a window is listed twice: {out}")
    return out


def _opt_int(raw: Any) -> int | None:
    return int(raw) if raw not in (None, "", b"") else None


def decode_latency(flat: Sequence[int]) -> dict[str, Latency]:
    """Latency as the snapshot script gives it: per metric (wait, run, e2e in turn) its count
    and the buckets of its percentiles (-1: none)."""
    out: dict[str, Latency] = {}
    values = BUCKET_VALUES_MS
    for i, metric in enumerate(LATENCY_METRICS):
        at = 5 * i
        count = flat[at] if len(flat) > at + 4 else 0
        if count <= 0:
            out[metric] = NO_LATENCY
            continue
        b50, b90, b99, b999 = flat[at + 1], flat[at + 2], flat[at + 3], flat[at + 4]
        out[metric] = Latency(
            count,
            values[b50] if b50 >= 0 else None,
            values[b90] if b90 >= 0 else None,
            values[b99] if b99 >= 0 else None,
            values[b999] if b999 >= 0 else None,
        )
    return out


def decode_span(raw: str) -> tuple[int, int, dict[str, int], dict[str, Latency]]:
    """A span from the snapshot script (JSON): (start ms, end ms, counter increases, latency)."""
    flat = json.loads(raw)
    counts = dict(zip(flat[17::2], flat[18::2], strict=True))
    return flat[0] * 1000, flat[1] * 1000, counts, decode_latency(flat[2:17])


#: Spans are decoded once per (window length, raw JSON): the script caches a span's JSON
#: for the second it stands for, so a dashboard polling several times a second gets the
#: same strings back, and decoding each once saves most of the Python side of a snapshot.
#: The objects are immutable, so sharing them is safe.
_SPAN_CACHE_SIZE = 4096
_NO_LIFETIME: Mapping[str, Latency] = MappingProxyType(dict.fromkeys(LATENCY_METRICS, NO_LATENCY))


@functools.lru_cache(maxsize=_SPAN_CACHE_SIZE)
def _window_stats(length_s: int, raw: str) -> WindowStats:
    start_ms, end_ms, counts, latency = decode_span(raw)
    return WindowStats(length_s, start_ms, end_ms, MappingProxyType(counts), MappingProxyType(latency))


@functools.lru_cache(maxsize=_SPAN_CACHE_SIZE)
def _decoded_lifetime(raw: str) -> Mapping[str, Latency]:
    return MappingProxyType(decode_span(raw)[3])


def _lifetime(raw: str) -> Mapping[str, Latency]:
    return _decoded_lifetime(raw) if raw else _NO_LIFETIME


def _pairs(flat: Sequence[Any]) -> Iterable[tuple[Any, Any]]:
    """(field, value) pairs of an HGETALL reply: a flat list, or a dict (RESP3)."""
    if isinstance(flat, Mapping):
        return flat.items()
    return zip(flat[::2], flat[1::2], strict=True)


def decode_queue_snapshot(queue: str, windows_s: Sequence[int], reply: Sequence[Any]) -> QueueSnapshot:
    """Turn snapshot.lua's reply (a flat array, see its header) into a :class:`QueueSnapshot`."""
    now_ms = int(reply[0])
    running = []
    flat = reply[12] or ()
    for i in range(0, len(flat), 8):
        task_id, deadline_raw, worker, started, attempts, name, priority, progress = flat[i : i + 8]
        deadline = int(deadline_raw)
        started_ms = _opt_int(started)
        running.append(
            RunningTask(
                task_id,
                name or "",
                worker or "",
                int(attempts or 0),
                _opt_int(priority),
                started_ms,
                deadline,
                None if started_ms is None else now_ms - started_ms,
                deadline - now_ms,
                json.loads(progress) if progress else None,
            )
        )
    depth = {int(p): int(n) for p, n in _pairs(reply[10] or ())}
    counters = dict.fromkeys(COUNTERS, 0)
    for name, n in _pairs(reply[11] or ()):
        counters[name] = int(n)
    aging_us = _opt_int(reply[7])
    next_due_ms = int(reply[3])
    return QueueSnapshot(
        queue=queue,
        taken_ms=now_ms,
        queued=int(reply[1]),
        by_priority=MappingProxyType({p: depth[p] for p in sorted(depth, reverse=True) if depth[p] > 0}),
        scheduled=int(reply[2]),
        next_due_ms=None if next_due_ms < 0 else next_due_ms,
        running=int(reply[4]),
        overdue=int(reply[5]),
        dead=int(reply[6]),
        counters=MappingProxyType(counters),
        latency=_lifetime(reply[13]),
        windows=tuple(_window_stats(w, raw) for w, raw in zip(windows_s, reply[14:], strict=True)),
        running_tasks=tuple(running),
        aging_s=None if aging_us is None else aging_us / 1_000_000,
        default_priority=_opt_int(reply[8]),
        events_length=int(reply[9]),
    )


def worker_health(registered: bool, heartbeat_age_ms: int, interval_ms: int) -> WorkerHealth:
    """Gone when the registration expired; stale when the last heartbeat is older than two
    heartbeat intervals (a live worker beats once per interval); alive otherwise."""
    if not registered:
        return WorkerHealth.GONE
    if heartbeat_age_ms > 2 * interval_ms:
        return WorkerHealth.STALE
    return WorkerHealth.ALIVE


#: Heartbeat interval assumed for a registration that does not state one.
DEFAULT_INTERVAL_MS = 10_000


def decode_worker(worker_id: str, last_beat_ms: float, raw: Mapping[str, str] | None, now_ms: int) -> WorkerSnapshot:
    """A worker from its registry score and registration hash (None or empty: expired)."""
    if not raw:
        beat = int(last_beat_ms)
        return WorkerSnapshot(worker_id, WorkerHealth.GONE, beat, max(0, now_ms - beat))
    beat = int(raw.get("heartbeat_ms") or last_beat_ms)
    interval = _opt_int(raw.get("interval_ms"))
    if interval is None:
        ttl = _opt_int(raw.get("ttl_ms"))
        interval = ttl // 3 if ttl else DEFAULT_INTERVAL_MS
    age = max(0, now_ms - beat)
    return WorkerSnapshot(
        id=worker_id,
        health=worker_health(True, age, interval),
        heartbeat_ms=beat,
        heartbeat_age_ms=age,
        host=raw.get("host"),
        pid=_opt_int(raw.get("pid")),
        queues=tuple(json.loads(raw.get("queues") or "[]")),
        concurrency=_opt_int(raw.get("concurrency")),
        started_ms=_opt_int(raw.get("started_ms")),
        interval_ms=interval,
        processed=_opt_int(raw.get("processed")),
        failed=_opt_int(raw.get("failed")),
        current=tuple(json.loads(raw.get("current") or "[]")),
    )
