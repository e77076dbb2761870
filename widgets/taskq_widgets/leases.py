"""Leases: the running tasks of a queue with their lease deadlines counting down. Each reading
(``TaskQueue.inspect()``) gives the deadlines by the server's clock; the front end counts down
between readings from the server time of the last one, so the bars move smoothly and agree
with the clock the reaper uses. A heartbeat that pushed a deadline on is counted and flashed;
a lease that runs out (its worker paused or killed) goes below zero until the reaper takes the
task back, which the lease events (from ``TaskQueue.events()``) then show."""

from __future__ import annotations

from html import escape
from typing import Any

import traitlets

from taskq import AsyncTaskQueue, Inspection, InvalidOption, TaskQueue
from taskq_widgets.inspect_live import FRONTEND, LiveInspection, html_table

#: Event types that start or end a lease (``requeued``: the reaper took back an expired one).
LEASE_EVENTS = frozenset({"started", "succeeded", "retried", "dead", "requeued", "released", "cancelled"})


class Leases(LiveInspection):
    """Running tasks and their leases, live.

    >>> leases = Leases(tq, "default")   # doctest: +SKIP
    >>> leases                             # displays, and starts polling

    ``leases``: one dict per running task: id, name, worker, attempt, token, deadline_ms,
    lease_left_ms, lease_ms, started_ms, extensions (heartbeats seen extending this
    attempt's lease) and extended_ms (server time of the last one seen). ``events``: the
    latest lease events (started, succeeded, retried, dead, requeued, released, cancelled)
    since the widget's first reading, oldest first, at most ``log_limit``. ``requeued``:
    how many expired leases the reaper took back meanwhile; ``extensions``: heartbeats seen.
    """

    _esm = FRONTEND / "leases.js"
    _css = FRONTEND / "inspect.css"
    _kind = "leases"

    leases: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    events: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    requeued = traitlets.Int(0).tag(sync=True)
    extensions = traitlets.Int(0).tag(sync=True)
    running_total = traitlets.Int(0).tag(sync=True)

    def __init__(
        self,
        tq: TaskQueue | AsyncTaskQueue | str,
        queue: str,
        interval_s: float = 0.25,
        *,
        limit: int = 50,
        log_limit: int = 50,
    ) -> None:
        if isinstance(log_limit, bool) or not isinstance(log_limit, int) or not 0 <= log_limit <= 10_000:
            raise InvalidOption(f"log_limit must be an integer in 0..10000, got {log_limit!r}")
        super().__init__(tq, queue, interval_s, limit=limit)
        self.log_limit = log_limit
        self._since: str | None = None
        self._seen: dict[tuple[str, str | None], dict[str, Any]] = {}

    def _apply(self, seen: Inspection) -> None:
        rows: list[dict[str, Any]] = []
        known: dict[tuple[str, str | None], dict[str, Any]] = {}
        for entry in seen.running:
            key = (entry.id, entry.token)
            before = self._seen.get(key)
            row: dict[str, Any] = {
                "id": entry.id,
                "name": entry.name,
                "worker": entry.worker,
                "attempt": entry.attempt,
                "token": entry.token,
                "deadline_ms": entry.deadline_ms,
                "lease_left_ms": entry.lease_left_ms,
                "lease_ms": entry.lease_ms,
                "started_ms": entry.started_ms,
                "extensions": before["extensions"] if before else 0,
                "extended_ms": before["extended_ms"] if before else None,
            }
            if before is not None and entry.deadline_ms > before["deadline_ms"]:
                row["extensions"] += 1
                row["extended_ms"] = seen.taken_ms
                self.extensions += 1
            known[key] = row
            rows.append(row)
        self._seen = known
        self.leases = rows
        self.running_total = seen.running_total
        self._read_events(seen.taken_ms)

    def _read_events(self, taken_ms: int) -> None:
        if self._since is None:  # from the first reading on, by the server's clock
            self._since = f"{taken_ms}-0"
            return
        new: list[dict[str, Any]] = []
        for event in self.tq.events(self.queue, since=self._since, follow=False):
            self._since = event.cursor
            if event.type in LEASE_EVENTS:
                new.append(
                    {
                        "type": event.type,
                        "id": event.task_id,
                        "worker": event.worker,
                        "attempt": event.attempt,
                        "t_ms": event.timestamp_ms,
                    }
                )
        if new:
            self.requeued += sum(1 for e in new if e["type"] == "requeued")
            self.events = (self.events + new)[-self.log_limit :] if self.log_limit else []

    def _static_html(self) -> str:
        seen = self.inspection
        assert seen is not None
        parts = [
            '<div class="taskq-leases-static" style="font-family:sans-serif">',
            f"<b>taskq · {escape(seen.queue)} · leases</b> <small>running={seen.running_total} "
            f"· heartbeats seen={self.extensions} · requeued by the reaper={self.requeued}</small>",
        ]
        if self.leases:
            columns = ("id", "name", "worker", "attempt", "token", "lease_left_ms", "lease_ms", "extensions")
            parts.append(html_table(columns, self.leases, "running, by lease deadline"))
        if self.events:
            parts.append(html_table(("type", "id", "worker", "attempt", "t_ms"), self.events, "lease events"))
        parts.append("</div>")
        return "".join(parts)


__all__ = ["LEASE_EVENTS", "Leases"]
