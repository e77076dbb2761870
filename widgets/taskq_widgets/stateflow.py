"""StateFlow: the task state machine as a live diagram, fed by the core's task events.

Nodes: ``scheduled`` (delayed), ``backoff`` (waiting for a retry), one lane per priority
``q10`` .. ``q1`` (queued), one node per worker slot ``<worker>#<n>`` (running), and the
ends ``succeeded``, ``dead``, ``cancelled`` and ``purged`` (deleted from the dead-letter
queue: a ``purged`` event takes the task out of ``dead`` for good). Each event moves its
task from a node to another; the front end (``frontend/stateflow.js``) animates the moves as
tokens coloured by priority. Above ``max_tokens_s`` moves a second it samples: the extra
moves only add to the counts on the edges, so a run of thousands of tasks a second never
floods the page.
The front end buffers what it is sent (pause, step, slow motion); the queue is never held.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from html import escape
from typing import Any

import traitlets

from taskq import AsyncTaskQueue, Event, InvalidOption, TaskQueue
from taskq_widgets.feed import EventFeed, Slots
from taskq_widgets.live import LiveWidget
from taskq_widgets.monitor import FRONTEND, connect, queue_list
from taskq_widgets.polling import check_interval_s

LANES = tuple(f"q{p}" for p in range(10, 0, -1))
ENDS = ("succeeded", "dead", "cancelled", "purged")
#: Ends a task never leaves (dead ones can be re-driven or purged, so the dead are still tracked).
FINAL = ("succeeded", "cancelled", "purged")
MOVES = frozenset(
    ("enqueued", "scheduled", "queued", "started", "succeeded", "retried", "dead", "requeued", "released")
) | {"redriven", "cancelled", "purged"}
#: Edges between kinds of node, as shown with their counts: "<from>><to>".
EDGES = (
    "new>queued",
    "new>scheduled",
    "scheduled>queued",
    "queued>running",
    "running>succeeded",
    "running>backoff",
    "backoff>queued",
    "running>queued",
    "running>dead",
    "dead>queued",
    "dead>purged",
    "queued>cancelled",
    "scheduled>cancelled",
    "backoff>cancelled",
    "running>cancelled",
)
#: Tasks whose place is remembered (a bound on memory; the oldest are forgotten first).
MAX_TRACKED = 100_000
RECENT = 50


def kind(node: str) -> str:
    """The kind of a node: queued, running, or the node itself."""
    if node in LANES:
        return "queued"
    if "#" in node:
        return "running"
    return node


def lane(priority: int | None) -> str:
    return f"q{priority if priority is not None and 1 <= priority <= 10 else 5}"


class FlowState:
    """Where each task is, from its events alone; counts per node and per edge, and the
    token sampler. Pure logic, no I/O: :class:`StateFlow` feeds it."""

    def __init__(self, max_tokens_s: float) -> None:
        self.max_tokens_s = max_tokens_s
        self.where: OrderedDict[str, str] = OrderedDict()
        self.slots = Slots()
        self.occupancy: dict[str, int] = dict.fromkeys(("scheduled", "backoff", *LANES, *ENDS), 0)
        self.edges: dict[str, int] = dict.fromkeys(EDGES, 0)
        self.slot_names: list[str] = []
        self.seen = 0
        self.shown = 0
        self._bucket = max(1.0, max_tokens_s)
        self._bucket_ms: int | None = None
        self.window: list[tuple[int, bool]] = []  # (t_ms, shown) of the last second's moves

    def _target(self, e: Event) -> str | None:
        t = e.type
        if t in ("enqueued", "queued", "requeued", "released", "redriven"):
            return lane(e.priority)
        if t == "scheduled":
            return "scheduled"
        if t == "started":
            return self.slots.take(e.worker or "?", e.task_id)
        if t == "retried":
            return "backoff"
        if t in ENDS:
            return t
        return None  # progress, cancel_requested: no move

    def _source(self, e: Event) -> str:
        known = self.where.get(e.task_id)
        if known is not None:
            return known
        t = e.type
        if t in ("enqueued", "scheduled"):
            return "new"
        if t == "started":
            return lane(e.priority)
        if t == "queued":
            return "backoff" if e.attempt else "scheduled"
        if t in ("redriven", "purged"):
            return "dead"
        if t == "cancelled":
            return lane(e.priority)
        return "running"

    def _sample(self, t_ms: int) -> bool:
        """The token bucket, on the events' own (server) clock: deterministic."""
        if self._bucket_ms is not None and t_ms > self._bucket_ms:
            refill = (t_ms - self._bucket_ms) / 1000 * self.max_tokens_s
            self._bucket = min(max(1.0, self.max_tokens_s), self._bucket + refill)
        self._bucket_ms = t_ms if self._bucket_ms is None else max(self._bucket_ms, t_ms)
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return True
        return False

    def apply(self, e: Event) -> list[Any] | None:
        """Move ``e``'s task; the move as sent to the front end (None: not animated)."""
        if e.type not in MOVES:
            return None  # progress, cancel_requested: the task stays where it is
        known = e.task_id in self.where
        source = self._source(e)
        if "#" in source:
            self.slots.free(e.task_id)  # the attempt ended
        target = self._target(e)
        if target is None:
            return None
        if "#" in target and target not in self.slot_names:
            self.slot_names.append(target)
        if known:
            self.occupancy[source] = max(0, self.occupancy.get(source, 0) - 1)
        if target in FINAL:
            self.where.pop(e.task_id, None)
        else:
            self.where[e.task_id] = target
            self.where.move_to_end(e.task_id)
            if len(self.where) > MAX_TRACKED:
                self.where.popitem(last=False)
        self.occupancy[target] = self.occupancy.get(target, 0) + 1
        edge = f"{kind(source)}>{kind(target)}"
        self.edges[edge] = self.edges.get(edge, 0) + 1
        self.seen += 1
        t_ms = e.timestamp_ms
        shown = self._sample(t_ms)
        self.window.append((t_ms, shown))
        if not shown:
            return None
        self.shown += 1
        return [t_ms, e.task_id, e.type, source, target, e.priority, e.attempt, e.worker, e.queue]

    def rate(self) -> tuple[float, float]:
        """Moves a second and the share animated, over the last second of events."""
        if not self.window:
            return 0.0, 1.0
        end = self.window[-1][0]
        self.window = [w for w in self.window if w[0] > end - 1000]
        shown = sum(1 for _, s in self.window if s)
        return float(len(self.window)), shown / len(self.window)


class StateFlow(LiveWidget):
    """The task state machine, live: tokens move along its edges as events arrive.

    >>> flow = StateFlow(tq, queues=["default"])   # doctest: +SKIP
    >>> flow                                       # displays, and starts reading events

    ``tq``: a :class:`taskq.TaskQueue` (or a Redis URL). ``queues``: names, or None for every
    queue. ``interval_s``: seconds between event reads. ``max_tokens_s``: moves a second
    animated as tokens; above it the moves are sampled (all still counted on the edges).
    Events from the moment it is made are shown (tasks already placed appear as they move).
    """

    _esm = FRONTEND / "stateflow.js"
    _css = FRONTEND / "flow.css"

    queue_names: traitlets.List[str] = traitlets.List().tag(sync=True)
    occupancy = traitlets.Dict().tag(sync=True)
    edges = traitlets.Dict().tag(sync=True)
    slots: traitlets.List[str] = traitlets.List().tag(sync=True)
    batch = traitlets.Dict().tag(sync=True)
    moves_seen = traitlets.Int(0).tag(sync=True)
    moves_shown = traitlets.Int(0).tag(sync=True)
    rate = traitlets.Float(0.0).tag(sync=True)
    sampling = traitlets.Bool(False).tag(sync=True)
    max_tokens_s = traitlets.Float(60.0).tag(sync=True)
    recent: traitlets.List[list[Any]] = traitlets.List().tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    polling = traitlets.Bool(False).tag(sync=True)
    interval_s = traitlets.Float(0.1).tag(sync=True)

    def __init__(
        self,
        tq: TaskQueue | AsyncTaskQueue | str,
        queues: str | Sequence[str] | None = None,
        interval_s: float = 0.1,
        *,
        max_tokens_s: float = 60.0,
        **kwargs: Any,
    ) -> None:
        watched = queue_list(queues)
        interval = check_interval_s(interval_s)
        if (
            isinstance(max_tokens_s, bool)
            or not isinstance(max_tokens_s, (int, float))
            or not 0 < max_tokens_s <= 10_000
        ):
            raise InvalidOption(f"max_tokens_s must be a number in (0, 10000], got {max_tokens_s!r}")
        client, owned = connect(tq)
        super().__init__(interval_s=interval, max_tokens_s=float(max_tokens_s), queue_names=watched or [], **kwargs)
        self.tq = client
        self.queues = watched
        self.state = FlowState(float(max_tokens_s))
        self._owns_client = owned
        self._closed = False
        self._seq = 0
        self._apply_lock = threading.Lock()
        self.feed = EventFeed(client, watched, self._apply, interval, on_error=self._show_error, name="taskq-stateflow")
        self._runner = self.feed
        self.feed.mark_start()
        self._publish([])

    # -- events --------------------------------------------------------------------------

    def refresh(self) -> int:
        """Read the new events now and apply them (synchronous); how many were read."""
        return self.feed.poll()

    def _apply(self, events: list[Event]) -> None:
        with self._apply_lock:
            moves = [m for m in (self.state.apply(e) for e in events) if m is not None]
            self._publish(moves)

    def _publish(self, moves: list[list[Any]]) -> None:
        state = self.state
        rate, share = state.rate()
        self._seq += 1
        with self.hold_sync():
            self.occupancy = dict(state.occupancy)
            self.edges = dict(state.edges)
            self.slots = list(state.slot_names)
            self.moves_seen = state.seen
            self.moves_shown = state.shown
            self.rate = rate
            self.sampling = share < 1.0
            # The counts travel with the moves too: a paused or slowed front end shows the
            # counts of the moves it has played, not the newest ones.
            self.batch = {
                "seq": self._seq,
                "moves": moves,
                "occupancy": self.occupancy,
                "edges": self.edges,
                "seen": state.seen,
                "sampling": self.sampling,
                "rate": rate,
            }
            if moves:
                self.recent = (self.recent + moves)[-RECENT:]
            self.error = ""

    @traitlets.observe("max_tokens_s")
    def _max_changed(self, change: dict[str, Any]) -> None:
        if hasattr(self, "state"):
            self.state.max_tokens_s = float(change["new"])

    # -- display -------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget (starts reading), plus a static HTML table of the counts."""
        if not self._closed:
            self.start()
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = self._repr_html_()
        data["text/plain"] = repr(self)
        return data, metadata

    def _repr_html_(self) -> str:
        return flow_html(self.state)

    def __repr__(self) -> str:
        occ = {k: v for k, v in self.state.occupancy.items() if v}
        return f"<StateFlow queues={self.queues or 'all'} moves={self.state.seen} now={occ}>"


ARROW = " \u2192 "


def flow_html(state: FlowState) -> str:
    """The static fallback: tasks per place and moves per edge, as HTML tables."""
    cell = "padding:2px 8px;border:1px solid #ccc"
    places = [("scheduled", "scheduled"), ("backoff", "retry backoff")]
    places += [(q, f"queued P{q[1:]}") for q in LANES]
    running = sum(v for k, v in state.occupancy.items() if "#" in k)
    rows = [(label, state.occupancy.get(node, 0)) for node, label in places]
    rows += [("running", running)] + [(end, state.occupancy.get(end, 0)) for end in ENDS]
    body = "".join(f'<tr><td style="{cell}">{escape(k)}</td><td style="{cell}">{v}</td></tr>' for k, v in rows)
    edges = "".join(
        f'<tr><td style="{cell}">{escape(e.replace(">", ARROW))}</td><td style="{cell}">{n}</td></tr>'
        for e, n in state.edges.items()
        if n
    )
    return (
        '<div class="taskq-stateflow-static" style="font-family:sans-serif;font-size:13px;display:flex;gap:16px">'
        f'<table style="border-collapse:collapse"><tr><th style="{cell}">place</th><th style="{cell}">tasks</th></tr>'
        f"{body}</table>"
        f'<table style="border-collapse:collapse"><tr><th style="{cell}">move</th><th style="{cell}">count</th></tr>'
        f"{edges}</table></div>"
    )


__all__ = ["EDGES", "LANES", "FlowState", "StateFlow", "flow_html", "kind"]
