"""Timeline: a live Gantt chart of attempts, one row per worker slot, fed by task events.

A bar runs from an attempt's ``started`` event (the claim) to the event that ends it, and is
coloured by how it ended: succeeded, retried (a gap follows until the next attempt: the
backoff), dead, cancelled, released (given back at shutdown) or lost (its lease expired:
the worker died or stalled, and the reaper requeued the task; the next attempt appears on
another row). A ``purged`` event (the task deleted from the dead-letter queue) ends a bar
still open as dead and frees its slot. Claims made by one claim call share a ``claim`` id,
so a batch shows as bars that start together. Rows are ``<worker>#<n>`` slots
(:class:`~taskq_widgets.feed.Slots`).
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

#: The event that ends an attempt -> the bar's outcome.
ENDINGS = {
    "succeeded": "succeeded",
    "retried": "retried",
    "dead": "dead",
    "cancelled": "cancelled",
    "released": "released",
    "requeued": "lost",
    # Only dead tasks are purged, so a bar still open at a purge lost its `dead` event (trimmed
    # from the capped stream before it was read): the attempt ended dead, by this time at latest.
    "purged": "dead",
}


class TimelineState:
    """Bars from events alone, bounded: at most ``max_bars``, and none that ended more than
    ``window_s`` before the newest event. Pure logic, no I/O: :class:`Timeline` feeds it."""

    def __init__(self, window_s: float, max_bars: int) -> None:
        self.window_s = window_s
        self.max_bars = max_bars
        self.slots = Slots()
        self.bars: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self.open: dict[str, tuple[str, int]] = {}  # task id -> its running bar
        self.now_ms = 0
        self.claims: dict[str, int] = {}  # claim (stream id) -> bars it started, recent ones

    def apply(self, e: Event) -> bool:
        """Add or end a bar for ``e``; whether anything changed."""
        self.now_ms = max(self.now_ms, e.timestamp_ms)
        if e.type == "started":
            self._end(e.task_id, e.timestamp_ms, "lost")  # a bar still open: that attempt was lost
            row = self.slots.take(e.worker or "?", e.task_id)
            key = (e.task_id, e.attempt or 0)
            self.bars[key] = {
                "id": e.task_id,
                "attempt": e.attempt or 0,
                "priority": e.priority,
                "queue": e.queue,
                "row": row,
                "start_ms": e.timestamp_ms,
                "end_ms": None,
                "outcome": "running",
                "claim": e.stream_id,
            }
            self.bars.move_to_end(key)
            self.open[e.task_id] = key
            self.claims[e.stream_id] = self.claims.get(e.stream_id, 0) + 1
            return True
        outcome = ENDINGS.get(e.type)
        return outcome is not None and self._end(e.task_id, e.timestamp_ms, outcome)

    def _end(self, task_id: str, t_ms: int, outcome: str) -> bool:
        key = self.open.pop(task_id, None)
        self.slots.free(task_id)
        if key is None or key not in self.bars:
            return False
        bar = self.bars[key]
        bar["end_ms"], bar["outcome"] = t_ms, outcome
        return True

    def prune(self) -> None:
        horizon = self.now_ms - self.window_s * 1000
        for key in [k for k, b in self.bars.items() if b["end_ms"] is not None and b["end_ms"] < horizon]:
            del self.bars[key]
        while len(self.bars) > self.max_bars:
            key = next((k for k, b in self.bars.items() if b["end_ms"] is not None), next(iter(self.bars)))
            if self.open.get(key[0]) == key:
                del self.open[key[0]]
            del self.bars[key]
        if len(self.claims) > 4 * self.max_bars:
            keep = list(self.claims.items())[-self.max_bars :]
            self.claims = dict(keep)

    def rows(self) -> list[str]:
        """The slots that have a bar, worker by worker, slot by slot."""
        names = {b["row"] for b in self.bars.values()}

        def order(name: str) -> tuple[str, int]:
            worker, _, n = name.rpartition("#")
            return worker, int(n)

        return sorted(names, key=order)

    def attempts(self, task_id: str) -> list[dict[str, Any]]:
        """The bars of one task, by attempt."""
        return sorted((b for b in self.bars.values() if b["id"] == task_id), key=lambda b: int(b["attempt"]))


class Timeline(LiveWidget):
    """A live Gantt chart: one row per worker slot, a bar per attempt coloured by outcome.

    >>> tl = Timeline(tq, queues=["default"])   # doctest: +SKIP
    >>> tl                                      # displays, and starts reading events

    ``window_s``: seconds of history shown (and kept); ``max_bars``: bars kept at most.
    """

    _esm = FRONTEND / "timeline.js"
    _css = FRONTEND / "flow.css"

    queue_names: traitlets.List[str] = traitlets.List().tag(sync=True)
    bars: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    rows: traitlets.List[str] = traitlets.List().tag(sync=True)
    now_ms = traitlets.Int(0).tag(sync=True)
    window_s = traitlets.Float(20.0).tag(sync=True)
    batched_claims = traitlets.Int(0).tag(sync=True)
    attempts_seen = traitlets.Int(0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    polling = traitlets.Bool(False).tag(sync=True)
    interval_s = traitlets.Float(0.2).tag(sync=True)

    def __init__(
        self,
        tq: TaskQueue | AsyncTaskQueue | str,
        queues: str | Sequence[str] | None = None,
        interval_s: float = 0.2,
        *,
        window_s: float = 20.0,
        max_bars: int = 400,
        **kwargs: Any,
    ) -> None:
        watched = queue_list(queues)
        interval = check_interval_s(interval_s)
        if isinstance(window_s, bool) or not isinstance(window_s, (int, float)) or not 1 <= window_s <= 3600:
            raise InvalidOption(f"window_s must be a number of seconds in [1, 3600], got {window_s!r}")
        if isinstance(max_bars, bool) or not isinstance(max_bars, int) or not 1 <= max_bars <= 10_000:
            raise InvalidOption(f"max_bars must be an integer in 1..10000, got {max_bars!r}")
        client, owned = connect(tq)
        super().__init__(interval_s=interval, window_s=float(window_s), queue_names=watched or [], **kwargs)
        self.tq = client
        self.queues = watched
        self.state = TimelineState(float(window_s), max_bars)
        self._owns_client = owned
        self._closed = False
        self._lock = threading.Lock()
        self.feed = EventFeed(client, watched, self._apply, interval, on_error=self._show_error, name="taskq-timeline")
        self._runner = self.feed
        self.feed.mark_start()

    def refresh(self) -> int:
        """Read the new events now and apply them (synchronous); how many were read."""
        return self.feed.poll()

    def attempts(self, task_id: str) -> list[dict[str, Any]]:
        """The bars of one task, by attempt (see :meth:`TimelineState.attempts`)."""
        with self._lock:
            return [dict(b) for b in self.state.attempts(task_id)]

    def _apply(self, events: list[Event]) -> None:
        with self._lock:
            state = self.state
            changed = False
            for e in events:
                if state.apply(e):
                    changed = True
                    if e.type == "started":
                        self.attempts_seen += 1
            state.prune()
            if not changed:
                self.now_ms = state.now_ms
                return
            with self.hold_sync():
                self.bars = [dict(b) for b in state.bars.values()]
                self.rows = state.rows()
                self.batched_claims = sum(1 for n in state.claims.values() if n > 1)
                self.now_ms = state.now_ms
                self.error = ""

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget (starts reading), plus a static SVG of the bars for renderers
        without widgets."""
        if not self._closed:
            self.start()
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = self._repr_html_()
        data["text/plain"] = repr(self)
        return data, metadata

    def _repr_html_(self) -> str:
        with self._lock:
            return timeline_svg(list(self.state.bars.values()), self.state.rows(), self.state.now_ms, self.window_s)

    def __repr__(self) -> str:
        return f"<Timeline queues={self.queues or 'all'} bars={len(self.state.bars)} rows={len(self.state.rows())}>"


COLOURS = {
    "running": "#4e79a7",
    "succeeded": "#59a14f",
    "retried": "#f28e2b",
    "dead": "#e15759",
    "cancelled": "#9c9c9c",
    "released": "#b07aa1",
    "lost": "#000000",
}


def timeline_svg(bars: list[dict[str, Any]], rows: list[str], now_ms: int, window_s: float) -> str:
    """The static fallback: the bars as an SVG (one row per slot, the last ``window_s``), under a
    legend of the outcome colours, so a static page says what black or orange means."""
    width, label_w, row_h, legend_h = 720, 150, 18, 18
    start = now_ms - window_s * 1000
    scale = (width - label_w) / (window_s * 1000)
    y = {row: legend_h + i * row_h for i, row in enumerate(rows)}
    parts = [
        f'<svg class="taskq-timeline-static" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{legend_h + max(1, len(rows)) * row_h + 4}" font-family="sans-serif" font-size="11">'
    ]
    x = 2
    for outcome, colour in COLOURS.items():
        label = "lost (lease expired)" if outcome == "lost" else outcome
        parts.append(f'<rect x="{x}" y="3" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 13}" y="12">{label}</text>')
        x += 20 + 6 * len(label)
    parts.append(f'<text x="{width - 2}" y="12" text-anchor="end">last {window_s:g} s</text>')
    if not bars:
        parts.append(f'<text x="{label_w}" y="{legend_h + 13}">no attempts yet</text>')
    for row, top in y.items():
        parts.append(f'<text x="2" y="{top + 13}">{escape(row[-22:])}</text>')
    for b in bars:
        end = b["end_ms"] if b["end_ms"] is not None else now_ms
        x0 = label_w + max(0.0, (b["start_ms"] - start) * scale)
        x1 = label_w + max(0.0, (end - start) * scale)
        colour = COLOURS.get(b["outcome"], "#888")
        parts.append(
            f'<rect x="{x0:.1f}" y="{y[b["row"]] + 2}" width="{max(1.0, x1 - x0):.1f}" height="{row_h - 4}" '
            f'fill="{colour}"><title>{escape(b["id"])} attempt {b["attempt"]}: {b["outcome"]}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["COLOURS", "ENDINGS", "Timeline", "TimelineState", "timeline_svg"]
