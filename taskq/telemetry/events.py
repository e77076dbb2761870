"""Task events: the :class:`Event` model, the decoding of stream entries, and
:class:`EventReader`, the sans-IO reader of the events streams that both clients'
``events()`` iterators drive.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from taskq.errors import InvalidOption
from taskq.plan import Command, Emit, Plan, Stream
from taskq.telemetry.snapshot import to_plain

#: A ``since`` position: "$" (now), a stream id ("0", "1733400000000-3", each part a 64-bit
#: unsigned number) or an event's cursor ("id#n").
_START_RE = re.compile(r"\$|\d+(-\d+)?(#\d+)?")

#: A stream entry: (stream id, fields).
Entry = tuple[str, Mapping[str, str]]


class EventPlans(Protocol):
    """The plans an :class:`EventReader` needs (:class:`taskq.ops.Operations` has them)."""

    @property
    def cluster(self) -> bool: ...  # on a Redis Cluster: one XREAD per queue

    def event_stream_tails(self, queues: Sequence[str]) -> Plan[dict[str, str]]: ...

    def queues(self) -> Plan[list[str]]: ...

    def read_events(
        self, positions: Sequence[tuple[str, str]], count: int, block_ms: int | None, together: bool
    ) -> Plan[dict[str, list[Entry]]]: ...


@dataclass(frozen=True, slots=True)
class Event:
    """One task transition from a queue's events stream.

    ``type`` is one of enqueued, scheduled, queued (a delayed or retried task became due),
    started, succeeded, cancelled, cancel_requested, retried, dead, requeued (its lease
    expired), released (given back at shutdown, or by a worker handed it with no free slot:
    taskq.handoff), redriven, purged (deleted from the
    dead-letter queue for good: its record is gone; ``priority`` and ``attempt`` are the ones
    it died with), or progress (a running task's ``current_task().progress(...)``, in
    ``progress``). Readers should ignore a type they do not know: new ones may be added.
    ``stream_id`` is the stream entry (the events of one script call share it); ``cursor``
    resumes right after this event.
    """

    type: str
    task_id: str
    queue: str
    priority: int | None
    attempt: int | None
    worker: str | None
    stream_id: str
    index: int
    progress: dict[str, Any] | None = None
    """For a ``progress`` event: {done, total, message} (``current_task().progress``)."""

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
    progress = json.loads(fields["progress"]) if fields.get("progress") else None
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
            progress=progress,
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
    :meth:`flow` yields plans, the events read and pauses, and the clients' ``events()``
    hand it to their executor's ``stream`` (the same loop, sync or async).

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

    ``layout`` maps a sharded queue (:mod:`taskq.shards`) to its base queue and sub-queues:
    the reader follows each of their streams from the same ``since`` (a stream id or a cursor
    is then an instant: each stream resumes after it), and their events name the sharded
    queue. With ``discover``, ``layout_plan`` (:func:`taskq.shard_reads.layout_plan`) reads the
    shard counts of the queues known with each registry read, so a queue found later, or
    sharded after the start, has its sub-queues' streams added (from where a queue found then
    is read); a sub-queue no longer in use stays followed.
    """

    def __init__(
        self,
        ops: EventPlans,
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
        layout: Mapping[str, Sequence[str]] | None = None,
        layout_plan: Callable[[Sequence[str]], Plan[dict[str, tuple[str, ...]]]] | None = None,
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
        self.together = not ops.cluster  # one XREAD over queues on different slots is refused
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
        self._layout = dict(layout or {})
        self._layout_plan = layout_plan
        self._names: list[str] = []  # the queues as named (a sharded one once)
        self._shown: dict[str, str] = {}  # a sub-queue's stream: the sharded queue its events name
        self._add_queues(queues)

    def _add_queues(self, queues: Iterable[str]) -> None:
        since = self._since
        for name in queues:
            if name not in self._names:
                self._names.append(name)
            start = since.get(name, "$") if isinstance(since, Mapping) else (since or "$")
            for q in self._layout.get(name, (name,)):
                if q in self.positions or q in self._unresolved:
                    continue
                self.queues.append(q)
                if q != name:
                    self._shown[q] = name
                self._set_start(q, str(start))

    def _set_start(self, queue: str, start: str) -> None:
        if not _START_RE.fullmatch(start) or any(int(n) >= 2**64 for n in re.findall(r"\d+", start)):
            raise InvalidOption(f"since must be '$', '0', a stream id or an event's cursor, got {start!r}")
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

    def flow(self) -> Stream[Event]:
        """The whole reading loop as one streaming flow, which either executor's ``stream``
        runs (the clients' ``events()``): read, emit what came, pause, until
        :meth:`pause_s` says stop."""
        while True:
            started = time.monotonic()
            events: list[Event] = yield self.next_plan()
            if events:
                yield Emit(events)
            pause = self.pause_s(bool(events), time.monotonic() - started)
            if pause is None:
                return
            if pause:
                yield pause

    def next_plan(self) -> Plan[list[Event]]:
        """The next read: learns where "now" is first, then reads new entries (and, with
        ``discover``, reads the queue registry every ``discover_s`` seconds)."""
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
            if self._layout_plan is None or not self._names:
                return Plan(registry.commands, lambda rs: self._discovered(registry.parse(rs)))
            layout = self._layout_plan(self._names)  # the queues' shard counts, same round trip
            n = len(registry.commands)
            return Plan(
                [*registry.commands, *layout.commands],
                lambda rs: self._discovered(registry.parse(rs[:n]), layout.parse(rs[n:])),
            )
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

    def _discovered(self, names: Sequence[str], layout: Mapping[str, Sequence[str]] | None = None) -> list[Event]:
        if layout is not None:
            self._layout.update(layout)
        for name in names:
            if name not in self._names:
                self._names.append(name)
        for name in self._names:  # a queue found earlier may have been sharded since
            for q in self._layout.get(name, (name,)):
                if q not in self.positions and q not in self._unresolved:
                    self.queues.append(q)
                    self.positions[q] = self._discovered_start()
                    if q != name:
                        self._shown[q] = name
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
                events = decode_event_entry(self._shown.get(q, q), stream_id, fields)
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
