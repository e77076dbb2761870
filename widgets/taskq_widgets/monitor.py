"""QueueMonitor: a live view of one or more queues, fed only by ``TaskQueue.snapshot()``.

A background thread (:class:`~taskq_widgets.polling.Poller`) reads one snapshot every
``interval_s`` seconds and sets the synced traitlets in one batch; the anywidget front end
(``frontend/monitor.js``, plain JavaScript shipped as package data) redraws from them. The
kernel stays free the whole time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets  # type: ignore[import-untyped]
import traitlets

from taskq import (
    LATENCY_METRICS,
    MAX_WINDOW_S,
    AsyncTaskQueue,
    InvalidOption,
    Snapshot,
    TaskQueue,
    check_queue_name,
)
from taskq_widgets.figures import DEFAULT_METRIC, Figures, add_point, figures_of
from taskq_widgets.live import LiveWidget
from taskq_widgets.polling import Poller, check_interval_s
from taskq_widgets.static import figures_html, figures_text

#: Traitlets copied from each reading (:class:`~taskq_widgets.figures.Figures` field names).
FRONTEND = Path(__file__).parent / "frontend"
"""The browser side: ``monitor.js`` (an anywidget ES module) and ``monitor.css``."""

_COPIED = (
    "pending",
    "queued",
    "running",
    "scheduled",
    "dead",
    "overdue",
    "succeeded",
    "failed",
    "retried",
    "enqueued",
    "throughput",
    "p50_ms",
    "p99_ms",
    "latency_samples",
    "depth_by_priority",
    "per_queue",
    "running_tasks",
    "workers",
    "schedules",
    "rate_limits",
)


def connect(tq: TaskQueue | AsyncTaskQueue | str) -> tuple[TaskQueue, bool]:
    """A blocking client for ``tq`` and whether the caller owns (must close) it."""
    if isinstance(tq, TaskQueue):
        return tq, False
    if isinstance(tq, AsyncTaskQueue):
        return TaskQueue(tq.url, prefix=tq.prefix, default_queue=tq.default_queue), True
    if isinstance(tq, str):
        return TaskQueue(tq), True
    raise InvalidOption(f"expected a taskq.TaskQueue or a Redis URL, got {type(tq).__name__}")


def queue_list(queues: str | Sequence[str] | None) -> list[str] | None:
    """Validated queue names (None: every queue the server knows, found at each poll)."""
    if queues is None:
        return None
    names = [queues] if isinstance(queues, str) else list(queues)
    if not names:
        raise InvalidOption("queues is None (every queue) or a non-empty list of queue names")
    return [check_queue_name(q) for q in names]


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidOption(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


class QueueMonitor(LiveWidget):
    """A live view of queues: depth by priority, running tasks with lease age, scheduled,
    dead, throughput and P50/P99 sparklines, and the workers with their health.

    >>> mon = QueueMonitor(tq, queues=["default"])   # doctest: +SKIP
    >>> mon                                           # displays, and starts polling
    >>> mon.refresh(); mon.pending                    # one synchronous reading

    ``tq``: a :class:`taskq.TaskQueue` (or a Redis URL). ``queues``: names, or None for
    every queue. ``interval_s``: seconds between readings. ``history``: sparkline points
    kept (one per second). ``window_s``: the window (whole seconds, up to 900) throughput
    and percentiles are computed over. ``metric``: the latency the P50/P99 show, 'e2e'
    (enqueued to succeeded), 'wait' (ready to claimed) or 'run'.
    """

    _esm = FRONTEND / "monitor.js"
    _css = FRONTEND / "monitor.css"

    pending = traitlets.Int(0).tag(sync=True)
    queued = traitlets.Int(0).tag(sync=True)
    running = traitlets.Int(0).tag(sync=True)
    scheduled = traitlets.Int(0).tag(sync=True)
    dead = traitlets.Int(0).tag(sync=True)
    overdue = traitlets.Int(0).tag(sync=True)
    succeeded = traitlets.Int(0).tag(sync=True)
    failed = traitlets.Int(0).tag(sync=True)
    retried = traitlets.Int(0).tag(sync=True)
    enqueued = traitlets.Int(0).tag(sync=True)
    throughput = traitlets.Float(0.0).tag(sync=True)
    p50_ms = traitlets.Float(None, allow_none=True).tag(sync=True)
    p99_ms = traitlets.Float(None, allow_none=True).tag(sync=True)
    latency_samples = traitlets.Int(0).tag(sync=True)
    depth_by_priority = traitlets.Dict().tag(sync=True)
    per_queue: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    running_tasks: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    workers: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    schedules: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    rate_limits: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    history: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    queue_names: traitlets.List[str] = traitlets.List().tag(sync=True)
    taken_ms = traitlets.Int(0).tag(sync=True)
    updates = traitlets.Int(0).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    polling = traitlets.Bool(False).tag(sync=True)
    interval_s = traitlets.Float(0.25).tag(sync=True)
    window_s = traitlets.Int(10).tag(sync=True)
    metric = traitlets.Unicode(DEFAULT_METRIC).tag(sync=True)

    def __init__(
        self,
        tq: TaskQueue | AsyncTaskQueue | str,
        queues: str | Sequence[str] | None = None,
        interval_s: float = 0.25,
        history: int = 120,
        *,
        window_s: int = 10,
        metric: str = DEFAULT_METRIC,
        running_limit: int = 10,
        **kwargs: Any,
    ) -> None:
        watched = queue_list(queues)
        interval = check_interval_s(interval_s)
        history_limit = _check_int("history", history, 0, 100_000)
        window = _check_int("window_s", window_s, 1, MAX_WINDOW_S)
        limit = _check_int("running_limit", running_limit, 0, 1000)
        if metric not in LATENCY_METRICS:
            raise InvalidOption(f"metric is one of {', '.join(LATENCY_METRICS)}, got {metric!r}")
        client, owned = connect(tq)
        super().__init__(interval_s=interval, window_s=window, metric=metric, **kwargs)
        self.tq = client
        self.queues = watched
        self.history_limit = history_limit
        self.running_limit = limit
        self.snapshot: Snapshot | None = None
        """The last snapshot read (None before the first reading)."""
        self.figures: Figures | None = None
        self._owns_client = owned
        self._read_lock = threading.Lock()
        self._poller = Poller(self._poll, interval, on_error=self._show_error, name="taskq-monitor-poll")
        self._runner = self._poller
        self._box: ipywidgets.VBox | None = None
        self._closed = False

    # -- reading -----------------------------------------------------------------------

    def refresh(self) -> Snapshot:
        """Read one snapshot now and update every figure (synchronous, deterministic).
        A failed read is shown in the widget and raised."""
        try:
            return self._read()
        except Exception as exc:
            self._show_error(exc)
            raise

    def _read(self) -> Snapshot:
        with self._read_lock:
            snap = self.tq.snapshot(
                self.queues, windows_s=(self.window_s,), running_limit=self.running_limit, lifetime=False
            )
            figures = figures_of(snap, window_s=self.window_s, metric=self.metric, queues=self.queues)
            self._apply(figures)
            self.snapshot, self.figures = snap, figures
            return snap

    def _poll(self) -> None:
        if not self._closed:
            self._read()

    def _apply(self, f: Figures) -> None:
        with self.hold_sync():
            for name in _COPIED:
                setattr(self, name, getattr(f, name))
            self.queue_names = f.queues
            self.taken_ms = f.taken_ms
            self.history = add_point(self.history, f.point(), self.history_limit)
            self.error = ""
            self.updates += 1

    def _close_parts(self) -> None:
        if self._box is not None:
            for child in self._box.children[0].children:
                child.close()
            self._box.children[0].close()
            self._box.close()
            self._box = None

    # -- display -------------------------------------------------------------------------

    @property
    def view(self) -> ipywidgets.VBox:
        """The monitor with its controls (live/paused, refresh, interval), as displayed."""
        if self._box is None:
            live = ipywidgets.ToggleButton(value=self.polling, description="live", icon="play", tooltip="poll live")
            refresh = ipywidgets.Button(description="refresh", icon="refresh", tooltip="read one snapshot now")
            interval = ipywidgets.FloatSlider(
                value=self.interval_s,
                min=min(0.05, self.interval_s),
                max=max(5.0, self.interval_s),
                step=0.05,
                description="interval s",
                readout_format=".2f",
            )
            live.observe(lambda c: self.start() if c["new"] else self.stop(), names="value")
            self.observe(lambda c: setattr(live, "value", c["new"]), names="polling")
            refresh.on_click(lambda _b: self._refresh_quietly())
            ipywidgets.link((interval, "value"), (self, "interval_s"))
            controls = ipywidgets.HBox([live, refresh, interval])
            self._box = ipywidgets.VBox([controls, self])
        return self._box

    def _refresh_quietly(self) -> None:
        try:
            self._read()
        except Exception as exc:  # noqa: BLE001 - a button callback: shown in the widget
            self._show_error(exc)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget (with controls; starts polling), plus a static HTML table and text
        of the latest reading for renderers without widgets."""
        if self.figures is None:
            self._refresh_quietly()
        if not self._closed:
            self.start()
        bundle = self.view._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = self._repr_html_()
        data["text/plain"] = repr(self)
        return data, metadata

    def _repr_html_(self) -> str:
        if self.figures is None:
            return f'<div class="taskq-monitor-static">taskq monitor: no reading yet {self.error}</div>'
        return figures_html(self.figures, note=self.error)

    def __repr__(self) -> str:
        if self.figures is None:
            note = f": {self.error}" if self.error else ""
            return f"<QueueMonitor queues={self.queues or 'all'} (no reading yet{note})>"
        return figures_text(self.figures)


__all__ = ["QueueMonitor", "connect", "queue_list"]
