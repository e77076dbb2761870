"""KeyInspector: a queue's sorted sets, live — the queued set with members and scores (and the
aging score when the queue ages), the running set with lease deadlines, the scheduled set and
the dead-letter queue, read through the core's read-only ``TaskQueue.inspect()``. What
changed since the previous reading is highlighted."""

from __future__ import annotations

import dataclasses
from html import escape
from typing import Any

import traitlets

from taskq import Inspection
from taskq_widgets.inspect_live import FRONTEND, LiveInspection, html_table

#: The places, in the order the widget shows them.
PLACES = ("queued", "running", "scheduled", "dead")
#: What identifies a member's position in each place (a change in it is highlighted).
_SCORE_OF = {"queued": "score", "running": "deadline_ms", "scheduled": "due_ms", "dead": "died_ms"}


class KeyInspector(LiveInspection):
    """A queue's four sorted sets, updated live from ``tq.inspect(queue)``.

    >>> ki = KeyInspector(tq, "default")   # doctest: +SKIP
    >>> ki                                  # displays, and starts polling
    >>> ki.refresh(); ki.queued[0]          # one synchronous reading

    Each place is a list of dicts (the fields of :class:`taskq.QueuedEntry`,
    :class:`taskq.RunningEntry`, :class:`taskq.ScheduledEntry`, :class:`taskq.DeadEntry`),
    at most ``limit`` long; ``totals`` has each place's size. ``changed`` names, per place, the
    ids that arrived there or whose score moved since the previous reading.
    """

    _esm = FRONTEND / "keyinspector.js"
    _css = FRONTEND / "inspect.css"
    _kind = "keyinspector"

    queued: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    running: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    scheduled: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    dead: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    totals = traitlets.Dict().tag(sync=True)
    aging_s = traitlets.Float(None, allow_none=True).tag(sync=True)
    changed = traitlets.Dict().tag(sync=True)

    def _apply(self, seen: Inspection) -> None:
        before = {place: {row["id"]: row[_SCORE_OF[place]] for row in getattr(self, place)} for place in PLACES}
        changed: dict[str, list[str]] = {}
        for place in PLACES:
            rows = [dataclasses.asdict(entry) for entry in getattr(seen, place)]
            old = before[place]
            changed[place] = [r["id"] for r in rows if old.get(r["id"]) != r[_SCORE_OF[place]]]
            setattr(self, place, rows)
        self.changed = changed if self.updates else {place: [] for place in PLACES}
        self.totals = seen.totals
        self.aging_s = seen.aging_s

    def _static_html(self) -> str:
        seen = self.inspection
        assert seen is not None
        mode = "strict priority" if seen.aging_s is None else f"aging {seen.aging_s:g} s"
        parts = [
            '<div class="taskq-keyinspector-static" style="font-family:sans-serif">',
            f"<b>taskq · {escape(seen.queue)}</b> <small>{escape(mode)} · "
            f"{escape(' '.join(f'{k}={v}' for k, v in seen.totals.items()))}</small>",
        ]
        columns = {
            "queued": ("position", "id", "name", "priority", "score", "ready_us", "effective_priority"),
            "running": ("id", "name", "worker", "attempt", "token", "lease_left_ms"),
            "scheduled": ("id", "name", "priority", "attempts", "due_in_ms"),
            "dead": ("id", "name", "attempts", "error_type"),
        }
        for place in PLACES:
            rows = getattr(self, place)
            if rows:
                parts.append(html_table(columns[place], rows, f"{place} ({seen.totals[place]})"))
        parts.append("</div>")
        return "".join(parts)


__all__ = ["KeyInspector"]
