"""Live telemetry: the one layer the CLI, the widgets and the API read.

What the scripts keep per queue (key names in :mod:`taskq.keys`, all with the ``{queue}``
hash tag; the Lua side is ``lua/lib/common.lua``, "Telemetry"), every write aggregated per
script call, not per task:

* **Counters** (``stats``): lifetime totals per outcome: enqueued, started, succeeded,
  failed, retried, dead, cancelled, requeued, released, redriven, purged.
* **Latency histograms** (``hist:wait``, ``hist:run``, ``hist:e2e``): queue wait (ready →
  claimed), run (claimed → finished, failed attempts included) and end to end (enqueued →
  succeeded), in log-spaced buckets: bucket 0 holds values under 1 ms, bucket ``b >= 1``
  holds ``[1.1^(b-1), 1.1^b)`` ms. Each is a string of 48-bit counters (BITFIELD), cheap
  to increment and read whole. A percentile (nearest rank) is read off as its bucket's
  geometric midpoint ``1.1^(b - 1/2)``, so it is within :data:`RELATIVE_ERROR` (4.9 %) of
  the true value, plus or minus the 1 ms resolution of the timestamps the scripts
  subtract (under about 20 ms the millisecond dominates). Bucket 0 reads as 0.5 ms.
* **Window checkpoints** (``ckpt:1s``, ``ckpt:10s``): before its first write in a new
  second, a script copies the cumulative counters and histograms into a checkpoint; the
  first one of every 10-second period also goes into the coarse set. A window of W
  seconds is "the checkpoint of this second minus the one W seconds before", as
  Prometheus does with counters, so a window costs two reads, not one per slot. Windows
  cover whole seconds up to the start of the current one: exactly W seconds up to 60 s,
  within 10 s of W up to 900 s. So they change once a second, and the first snapshot in
  each second computes them for every reader after it (``windows`` cache). Memory stays
  bounded: at most 75 fine and 96 coarse checkpoints per queue, each about the size of
  the histograms (a few hundred bytes to 5 kB).
* **Depth per priority** (``depth``): how many queued tasks each priority has, kept by every
  script that moves tasks in or out of ``queued``. Aging queues mix priorities within one
  score range, so counting score ranges (exact for strict queues only) would not do; the
  counters are exact for both as long as only the scripts touch ``queued``.
* **Events** (``events``): a capped stream of task transitions. One stream entry holds the
  events of one type from one script call (up to 100), as space-separated lists, so a
  claim of 500 tasks costs 5 XADDs, not 500. The cap is about ``events_maxlen`` events.
  With a sample rate N, the high-volume types (enqueued, scheduled, queued, started,
  succeeded) are kept for about 1 task in N (the same tasks for every type); failures,
  retries, deaths, cancellations, releases, requeues and re-drives are always kept.

This module holds the typed model (:class:`Snapshot`, :class:`Event`), the decoding of
script replies, the bucket arithmetic, a sans-I/O event reader, the Prometheus text
exposition and the worker log formatters. No I/O happens here: the clients drive it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from taskq.errors import InvalidOption

if TYPE_CHECKING:
    from taskq.ops import Operations, Plan

#: A stream entry: (stream id, fields).
Entry = tuple[str, Mapping[str, str]]

BUCKET_BASE = 1.1
#: Highest bucket the scripts use (lua/lib/common.lua): it holds everything from a year up.
MAX_BUCKET = 255
#: Largest relative error of a percentile read off a bucket >= 1 (its geometric midpoint).
RELATIVE_ERROR = math.sqrt(BUCKET_BASE) - 1
LATENCY_METRICS = ("wait", "run", "e2e")
#: Percentiles every latency reports: (name, per mille).
PERCENTILES = (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999))
#: The windows a snapshot reports by default, seconds.
DEFAULT_WINDOWS_S = (10, 60, 900)
MAX_WINDOW_S = 900
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
#: Event types that a sample rate thins; every other type is always written.
SAMPLED_EVENT_TYPES = frozenset({"enqueued", "scheduled", "queued", "started", "succeeded"})


# ---------------------------------------------------------------------------
# Buckets


def bucket_of(value_ms: float) -> int:
    """The histogram bucket of a latency, as the scripts compute it."""
    if value_ms < 1:
        return 0
    return min(MAX_BUCKET, math.floor(math.log(value_ms) / math.log(BUCKET_BASE)) + 1)


def bucket_bounds_ms(bucket: int) -> tuple[float, float]:
    """The values bucket ``bucket`` holds: ``[low, high)`` ms."""
    if bucket <= 0:
        return 0.0, 1.0
    return BUCKET_BASE ** (bucket - 1), BUCKET_BASE**bucket


def bucket_value_ms(bucket: int) -> float:
    """The value a bucket reports: its geometric midpoint (0.5 ms for bucket 0)."""
    if bucket <= 0:
        return 0.5
    return float(BUCKET_BASE ** (bucket - 0.5))


_BUCKET_VALUES_MS = tuple(bucket_value_ms(b) for b in range(MAX_BUCKET + 1))


def nearest_rank_ms(values_ms: Sequence[float], per_mille: int) -> float:
    """The exact nearest-rank percentile of ``values_ms`` (the definition the histogram
    approximates): the value at rank ceil(q * n) of the sorted values."""
    if not values_ms:
        raise InvalidOption("no values")
    ordered = sorted(values_ms)
    rank = max(1, (per_mille * len(ordered) + 999) // 1000)
    return ordered[rank - 1]


# ---------------------------------------------------------------------------
# The snapshot model


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


# ---------------------------------------------------------------------------
# Decoding snapshot replies


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
    values = _BUCKET_VALUES_MS
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
    for i in range(0, len(flat), 7):
        task_id, deadline_raw, worker, started, attempts, name, priority = flat[i : i + 7]
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


# ---------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class Event:
    """One task transition from a queue's events stream.

    ``type`` is one of enqueued, scheduled, queued (a delayed or retried task became due),
    started, succeeded, cancelled, cancel_requested, retried, dead, requeued (its lease
    expired), released (given back at shutdown) or redriven. ``stream_id`` is the stream
    entry (the events of one script call share it); ``cursor`` resumes right after this
    event.
    """

    type: str
    task_id: str
    queue: str
    priority: int | None
    attempt: int | None
    worker: str | None
    stream_id: str
    index: int

    @property
    def timestamp_ms(self) -> int:
        """When the event was written (the server clock, from the stream id)."""
        return int(self.stream_id.partition("-")[0])

    @property
    def cursor(self) -> str:
        """Pass as ``since`` to resume right after this event."""
        return f"{self.stream_id}#{self.index}"

    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        plain["timestamp_ms"] = self.timestamp_ms
        plain["cursor"] = self.cursor
        return plain


def _none_if_dash(token: str) -> str | None:
    return None if token in ("-", "") else token


def _int_or_none(token: str) -> int | None:
    return None if token in ("-", "") else int(token)


def decode_event_entry(queue: str, stream_id: str, fields: Mapping[str, str]) -> list[Event]:
    """The events of one stream entry (its fields hold space-separated lists)."""
    ids = (fields.get("id") or "").split()
    n = len(ids)

    def column(name: str) -> list[str]:
        tokens = (fields.get(name) or "").split(" ")
        if len(tokens) == n:
            return tokens
        return [tokens[0] if len(tokens) == 1 else "-"] * n

    priorities, attempts, workers = column("priority"), column("attempt"), column("worker")
    etype = fields.get("type", "")
    return [
        Event(
            type=etype,
            task_id=task_id,
            queue=queue,
            priority=_int_or_none(priorities[i]),
            attempt=_int_or_none(attempts[i]),
            worker=_none_if_dash(workers[i]),
            stream_id=stream_id,
            index=i,
        )
        for i, task_id in enumerate(ids)
    ]


def _stream_id_before(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    if seq and int(seq) > 0:
        return f"{ms}-{int(seq) - 1}"
    return f"{int(ms) - 1}-18446744073709551615" if int(ms) > 0 else "0-0"


class EventReader:
    """Reads the events streams of some queues from a starting point, without doing I/O:
    it hands out :class:`~taskq.ops.Plan` objects and says how long to pause between them.
    The clients' ``events()`` iterators drive it (sync and async).

    ``since``: None or "$" starts from now; "0" from the oldest event kept; a stream id
    ("1700000000000-0", or just milliseconds) after that entry; an :attr:`Event.cursor`
    right after that event. A mapping gives each queue its own starting point.

    With ``discover`` (what ``events(queues=None)`` uses) it also reads the queue registry
    every ``discover_s`` seconds and adds queues created since. A queue found that way is
    read from its oldest event kept when ``since`` is "0", after the stream id when
    ``since`` is one (or a cursor), and otherwise from the moment the reader started (the
    server clock), so "from now" means the same for every queue.

    Following, it blocks in one XREAD over all its streams for up to ``block_ms``, so new
    events arrive at once. Two cases fall back to polling every ``poll_s`` (one XREAD per
    queue, pipelined): a Redis Cluster, which refuses one XREAD across slots, and a server
    that answers a blocking read at once without waiting (an old fakeredis).
    """

    def __init__(
        self,
        ops: Operations,
        queues: Sequence[str],
        since: str | Mapping[str, str] | None = None,
        *,
        block_ms: int = 1000,
        poll_s: float = 0.1,
        count: int = 1000,
        follow: bool = True,
        discover: bool = False,
        discover_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not queues and not discover:
            raise InvalidOption("read events of at least one queue")
        self.ops = ops
        self.queues: list[str] = []
        self.block_ms = block_ms if follow else 0
        self.poll_s = poll_s
        self.count = count
        self.follow = follow
        self.blocking = self.block_ms > 0
        self.together = True
        self.discover = discover
        self.discover_s = discover_s
        self.positions: dict[str, str] = {}
        self._since = since
        self._clock = clock
        self._next_discovery = clock() + discover_s
        self._start_ms: int | None = None  # the server clock when the reader started (discover only)
        self._skip: dict[str, tuple[str, int]] = {}
        self._unresolved: list[str] = []
        self._blocked = False  # the last read was a blocking one
        self._block_used_ms = 0  # for how long
        self._resolving = False  # the last plan read no events (where "now" is, or the registry)
        self._add_queues(queues)

    def _add_queues(self, queues: Iterable[str]) -> None:
        since = self._since
        for q in queues:
            if q in self.positions or q in self._unresolved:
                continue
            self.queues.append(q)
            start = since.get(q, "$") if isinstance(since, Mapping) else (since or "$")
            self._set_start(q, str(start))

    def _set_start(self, queue: str, start: str) -> None:
        if start == "$":
            self._unresolved.append(queue)
        elif "#" in start:
            entry, _, index = start.partition("#")
            self.positions[queue] = _stream_id_before(entry)
            self._skip[queue] = (entry, int(index))
        else:
            self.positions[queue] = start

    def _discovered_start(self) -> str:
        """Where a queue found in the registry after the start is read from."""
        since = self._since
        if isinstance(since, str) and since not in ("", "$"):
            return since.partition("#")[0] if "#" in since else since
        return _stream_id_before(f"{self._start_ms or 0}-0")

    def next_plan(self) -> Plan[list[Event]]:
        """The next read: learns where "now" is first, then reads new entries (and, with
        ``discover``, reads the queue registry every ``discover_s`` seconds)."""
        from taskq.ops import Command, Plan  # here, not at the top: taskq.ops imports this module

        self._blocked = False
        self._resolving = bool(self._unresolved) or (self.discover and self._start_ms is None)
        if self._resolving:
            tails = self.ops.event_stream_tails(self._unresolved)
            commands = [*tails.commands, Command(("TIME",))]
            return Plan(commands, lambda rs: self._resolved(tails.parse(rs[:-1]), rs[-1]))
        if self.discover and (not self.queues or self._clock() >= self._next_discovery):
            self._resolving = True
            self._next_discovery = self._clock() + self.discover_s
            registry = self.ops.queues()
            return Plan(registry.commands, lambda rs: self._discovered(registry.parse(rs)))
        self._blocked = self.blocking and (self.together or len(self.queues) == 1)
        together = self.together and len(self.queues) > 1
        block_ms = self.block_ms if self._blocked else None
        if self.discover and block_ms is not None:  # wake up for the next registry read
            block_ms = max(1, min(block_ms, int(1000 * (self._next_discovery - self._clock()))))
        self._block_used_ms = block_ms or 0
        read = self.ops.read_events([(q, self.positions[q]) for q in self.queues], self.count, block_ms, together)
        return Plan(read.commands, lambda rs: self._decoded(read.parse, rs), errors_inline=True)

    def _resolved(self, tails: Mapping[str, str], time_reply: Any) -> list[Event]:
        seconds, micros = time_reply
        self._start_ms = self._start_ms or int(seconds) * 1000 + int(micros) // 1000
        for q in self._unresolved:
            self.positions[q] = tails.get(q) or "0-0"
        self._unresolved = []
        return []

    def _discovered(self, names: Sequence[str]) -> list[Event]:
        new = [q for q in names if q not in self.positions]
        for q in new:
            self.queues.append(q)
            self.positions[q] = self._discovered_start()
        return []

    def _decoded(self, parse: Callable[[list[Any]], Mapping[str, list[Entry]]], replies: list[Any]) -> list[Event]:
        try:
            entries = parse(replies)
        except Exception as exc:
            if self.together and "CROSSSLOT" in str(exc):
                self.together = False  # queues on different Cluster slots: one read each
                return []
            raise
        out: list[Event] = []
        for q in self.queues:
            for stream_id, fields in entries.get(q, []):
                events = decode_event_entry(q, stream_id, fields)
                skip = self._skip.pop(q, None)
                if skip is not None and skip[0] == stream_id:
                    events = events[skip[1] + 1 :]
                out += events
                self.positions[q] = stream_id
            self._skip.pop(q, None)
        return out

    def pause_s(self, got_events: bool, read_s: float) -> float | None:
        """Seconds to wait before the next read (0: at once), or None: stop (caught up, and
        not following)."""
        if got_events or (self._resolving and self.queues):
            return 0.0
        if not self.follow:
            return None
        if not self.queues:  # nothing to read yet: look at the registry again in a while
            return max(self.poll_s, self._next_discovery - self._clock())
        if self._blocked and self._block_used_ms >= 100 and read_s < self._block_used_ms / 2000:
            self.blocking = False  # the server answered a blocking read at once: poll instead
        if not self.together and len(self.queues) > 1:
            return self.poll_s
        return 0.0 if self._blocked and self.blocking else self.poll_s


# ---------------------------------------------------------------------------
# Prometheus text exposition


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


class PrometheusWriter:
    """A minimal writer of the Prometheus text format (version 0.0.4): metric families
    with HELP and TYPE lines, escaped label values, one sample per line."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, **labels: str) -> None:
        """Add one sample; ``kind`` is 'gauge' or 'counter' (counter names end in _total)."""
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(name, kind, help_text)
        family.samples.append((labels, value))

    def text(self) -> str:
        """The exposition: each family's HELP and TYPE lines, then its samples."""
        lines: list[str] = []
        for family in self._families.values():
            help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
            lines.append(f"# HELP {family.name} {help_text}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, value in family.samples:
                label_text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
                series = f"{family.name}{{{label_text}}}" if label_text else family.name
                lines.append(f"{series} {_format_value(value)}")
        return "\n".join(lines) + "\n" if lines else ""


def _window_label(length_s: int) -> str:
    if length_s % 60 == 0:
        return f"{length_s // 60}m"
    return f"{length_s}s"


_HELP = {
    "taskq_tasks": "Tasks in each place of a queue now.",
    "taskq_queued_tasks": "Queued tasks per priority.",
    "taskq_overdue_leases": "Running tasks whose lease expired, not yet requeued.",
    "taskq_tasks_total": "Task transitions since the queue was created, by outcome.",
    "taskq_rate_per_second": "Task transitions per second over a recent window.",
    "taskq_latency_observations": "Latency observations in the window.",
    "taskq_latency_seconds": "Latency percentile (wait: ready to claimed; run; e2e: enqueued to succeeded), "
    "within 4.9 % (log buckets).",
    "taskq_workers": "Registered workers by health.",
    "taskq_worker_heartbeat_age_seconds": "Time since the worker's last heartbeat.",
    "taskq_worker_running_tasks": "Tasks the worker runs now.",
    "taskq_worker_processed_total": "Tasks the worker finished since it started.",
}


def prometheus_text(snapshot: Snapshot) -> str:
    """The snapshot's figures in the Prometheus text format (``taskq metrics``).

    Latency percentiles are gauges in seconds with ``metric``, ``window`` ('10s', '1m',
    '15m', 'all') and ``quantile`` labels, not a Prometheus histogram: the buckets are
    finer (10 %) than Prometheus histograms are meant to carry.
    """
    w = PrometheusWriter()

    def add(name: str, value: float, **labels: str) -> None:
        kind = "counter" if name.endswith("_total") else "gauge"
        w.add(name, kind, _HELP[name], value, **labels)

    for q in snapshot.queues:
        for state in ("queued", "scheduled", "running", "dead"):
            add("taskq_tasks", getattr(q, state), queue=q.queue, state=state)
    for q in snapshot.queues:
        for priority, n in q.by_priority.items():
            add("taskq_queued_tasks", n, queue=q.queue, priority=str(priority))
    for q in snapshot.queues:
        add("taskq_overdue_leases", q.overdue, queue=q.queue)
    for q in snapshot.queues:
        for name, n in q.counters.items():
            add("taskq_tasks_total", n, queue=q.queue, outcome=name)
    for q in snapshot.queues:
        for window in q.windows:
            label = _window_label(window.length_s)
            for name in COUNTERS:
                add("taskq_rate_per_second", window.rate(name), queue=q.queue, outcome=name, window=label)
    for q in snapshot.queues:
        spans: list[tuple[str, Mapping[str, Latency]]] = [("all", q.latency)]
        spans += [(_window_label(win.length_s), win.latency) for win in q.windows]
        for label, latencies in spans:
            for metric in LATENCY_METRICS:
                lat = latencies.get(metric, NO_LATENCY)
                add("taskq_latency_observations", lat.samples, queue=q.queue, metric=metric, window=label)
                for pname, per_mille in PERCENTILES:
                    value = lat.percentile_ms(pname)
                    if value is not None:
                        quantile = str(per_mille / 1000)
                        labels = {"queue": q.queue, "metric": metric, "window": label, "quantile": quantile}
                        add("taskq_latency_seconds", value / 1000, **labels)
    by_health = dict.fromkeys((h.value for h in WorkerHealth), 0)
    for worker in snapshot.workers:
        by_health[worker.health.value] += 1
    for health, n in by_health.items():
        add("taskq_workers", n, health=health)
    for worker in snapshot.workers:
        age_s = worker.heartbeat_age_ms / 1000
        add("taskq_worker_heartbeat_age_seconds", age_s, worker=worker.id, health=worker.health.value)
    for worker in snapshot.workers:
        if worker.health is not WorkerHealth.GONE:
            add("taskq_worker_running_tasks", len(worker.current), worker=worker.id)
    for worker in snapshot.workers:
        if worker.processed is not None:
            add("taskq_worker_processed_total", worker.processed, worker=worker.id)
    return w.text()


# ---------------------------------------------------------------------------
# Worker logs

#: Attributes a worker puts on its task log records (``extra=``), written by the JSON formatter.
TASK_LOG_FIELDS = ("task_id", "task", "queue", "attempt", "worker", "duration_ms", "outcome", "error_type")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the task fields a worker
    attaches (task_id, task, queue, attempt, worker, duration_ms, outcome, error_type)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in TASK_LOG_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_formatter(kind: str) -> logging.Formatter:
    """The formatter for ``taskq worker --log-format``: 'text' (human-readable) or 'json'."""
    if kind == "json":
        return JsonLogFormatter()
    if kind == "text":
        return logging.Formatter(TEXT_LOG_FORMAT)
    raise InvalidOption(f"log format is 'text' or 'json', got {kind!r}")


__all__ = [
    "COUNTERS",
    "DEFAULT_WINDOWS_S",
    "LATENCY_METRICS",
    "PERCENTILES",
    "RELATIVE_ERROR",
    "Event",
    "EventReader",
    "JsonLogFormatter",
    "Latency",
    "PrometheusWriter",
    "QueueSnapshot",
    "RunningTask",
    "Snapshot",
    "SnapshotHint",
    "WindowStats",
    "WorkerHealth",
    "WorkerSnapshot",
    "bucket_bounds_ms",
    "bucket_of",
    "bucket_value_ms",
    "log_formatter",
    "nearest_rank_ms",
    "prometheus_text",
]
