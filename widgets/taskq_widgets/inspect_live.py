"""What the inspection widgets share (:class:`~taskq_widgets.keyinspector.KeyInspector`,
:class:`~taskq_widgets.leases.Leases`): one queue read by ``TaskQueue.inspect()`` every
``interval_s`` in a background :class:`~taskq_widgets.polling.Poller`, the synced traitlets
every reading sets, and the static HTML fallback for renderers without widgets."""

from __future__ import annotations

import threading
from html import escape
from pathlib import Path
from typing import Any

import traitlets

from taskq import AsyncTaskQueue, Inspection, InvalidOption, TaskQueue, check_queue_name
from taskq_widgets.live import LiveWidget
from taskq_widgets.monitor import connect
from taskq_widgets.polling import Poller, check_interval_s

FRONTEND = Path(__file__).parent / "frontend"

_STYLE = (
    "font-family:sans-serif;font-size:13px;border-collapse:collapse;margin:2px 0;"
    "text-align:right;font-variant-numeric:tabular-nums"
)
_CELL = "padding:2px 8px;border:1px solid #ccc"


def html_table(columns: tuple[str, ...], rows: list[dict[str, Any]], caption: str) -> str:
    """A static HTML table (inline styles, so it survives nbconvert and GitHub)."""

    def cell(value: Any, tag: str = "td") -> str:
        text = "\u2013" if value is None else str(value)
        return f'<{tag} style="{_CELL}">{escape(text)}</{tag}>'

    head = "".join(cell(c, "th") for c in columns)
    body = "".join("<tr>" + "".join(cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    caption_html = f'<caption style="text-align:left">{escape(caption)}</caption>'
    return f'<table style="{_STYLE}">{caption_html}<tr>{head}</tr>{body}</table>'


class LiveInspection(LiveWidget):
    """A live view of one queue fed by ``tq.inspect(queue)``; subclasses say what to keep
    (:meth:`_apply`) and how to draw it without a browser (:meth:`_static_html`)."""

    queue = traitlets.Unicode("").tag(sync=True)
    taken_ms = traitlets.Int(0).tag(sync=True)
    """Server time of the last reading (ms): the front end counts down from it."""
    updates = traitlets.Int(0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    polling = traitlets.Bool(False).tag(sync=True)
    interval_s = traitlets.Float(0.25).tag(sync=True)

    _kind = "inspection"

    def __init__(
        self, tq: TaskQueue | AsyncTaskQueue | str, queue: str, interval_s: float = 0.25, *, limit: int = 50
    ) -> None:
        name = check_queue_name(queue)
        interval = check_interval_s(interval_s)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidOption(f"limit must be an integer in 1..1000, got {limit!r}")
        client, owned = connect(tq)
        super().__init__(queue=name, interval_s=interval)
        self.tq = client
        self.limit = limit
        self.inspection: Inspection | None = None
        """The last reading (None before the first)."""
        self._owns_client = owned
        self._read_lock = threading.Lock()
        self._poller = Poller(self._poll, interval, on_error=self._show_error, name=f"taskq-{self._kind}-poll")
        self._runner = self._poller
        self._closed = False

    def refresh(self) -> Inspection:
        """Read the queue now and update every traitlet (synchronous; for notebooks and tests).
        A failed read is shown in the widget and raised."""
        try:
            return self._read()
        except Exception as exc:
            self._show_error(exc)
            raise

    def _read(self) -> Inspection:
        with self._read_lock:
            seen = self.tq.inspect(self.queue, limit=self.limit)
            with self.hold_sync():
                self._apply(seen)
                self.taken_ms = seen.taken_ms
                self.error = ""
                self.updates += 1
            self.inspection = seen
            return seen

    def _apply(self, seen: Inspection) -> None:
        raise NotImplementedError

    def _static_html(self) -> str:
        raise NotImplementedError

    def _poll(self) -> None:
        if not self._closed:
            self._read()

    def _refresh_quietly(self) -> None:
        try:
            self._read()
        except Exception as exc:  # noqa: BLE001 - shown in the widget
            self._show_error(exc)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget (starts polling), plus a static HTML table and text of the latest
        reading for renderers without widgets."""
        if self.inspection is None:
            self._refresh_quietly()
        if not self._closed:
            self.start()
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = self._repr_html_()
        data["text/plain"] = repr(self)
        return data, metadata

    def _repr_html_(self) -> str:
        if self.inspection is None:
            return f'<div class="taskq-{self._kind}-static">{self._kind}: no reading yet {escape(self.error)}</div>'
        return self._static_html()

    def __repr__(self) -> str:
        seen = self.inspection
        if seen is None:
            return f"<{type(self).__name__} queue={self.queue!r} (no reading yet)>"
        places = " ".join(f"{k}={v}" for k, v in seen.totals.items())
        return f"<{type(self).__name__} queue={self.queue!r} {places}>"


__all__ = ["FRONTEND", "LiveInspection", "html_table"]
