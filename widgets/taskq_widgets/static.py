"""The static fallback: a snapshot as an HTML table and as plain text, for places where
widgets cannot render (a notebook on GitHub, nbconvert, a terminal)."""

from __future__ import annotations

from html import escape
from typing import Any

from taskq import Snapshot
from taskq_widgets.figures import DEFAULT_METRIC, Figures, figures_of, format_number

#: The headline figures, in display order: (field, label). Each is rendered as an element
#: with ``data-field=<field>`` (the live widget uses the same attribute).
HEADLINE = (
    ("pending", "pending"),
    ("queued", "queued"),
    ("running", "running"),
    ("scheduled", "scheduled"),
    ("dead", "dead"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("throughput", "throughput /s"),
    ("p50_ms", "P50 ms"),
    ("p99_ms", "P99 ms"),
)

_QUEUE_COLUMNS = ("queue", "queued", "scheduled", "running", "dead", "succeeded", "failed", "throughput", "p99_ms")
_RUNNING_COLUMNS = ("id", "name", "queue", "worker", "attempt", "age_ms", "lease_left_ms", "progress")
_WORKER_COLUMNS = ("id", "health", "pid", "concurrency", "processed", "failed", "current")

_STYLE = (
    "font-family:sans-serif;font-size:13px;border-collapse:collapse;margin:2px 0;"
    "text-align:right;font-variant-numeric:tabular-nums"
)
_CELL = "padding:2px 8px;border:1px solid #ccc"


def _cell(value: Any, tag: str = "td", field: str | None = None) -> str:
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value) or "\u2013"
    elif isinstance(value, (int, float)) or value is None:
        text = format_number(value)
    else:
        text = str(value)
    attr = f' data-field="{field}"' if field else ""
    return f'<{tag} style="{_CELL}"{attr}>{escape(text)}</{tag}>'


def _table(columns: tuple[str, ...], rows: list[dict[str, Any]], caption: str) -> str:
    head = "".join(_cell(c, "th") for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    caption_html = f'<caption style="text-align:left">{escape(caption)}</caption>'
    return f'<table style="{_STYLE}">{caption_html}<tr>{head}</tr>{body}</table>'


def figures_html(f: Figures, *, title: str = "taskq", note: str = "") -> str:
    """The HTML fallback of one reading."""
    head = "".join(_cell(label, "th") for _, label in HEADLINE)
    values = "".join(_cell(getattr(f, field), field=field) for field, _ in HEADLINE)
    depth = [{"priority": p, "queued": n} for p, n in f.depth_by_priority.items() if n]
    parts = [
        '<div class="taskq-monitor-static" style="font-family:sans-serif">',
        f"<b>{escape(title)}</b> <small>queues: {escape(', '.join(f.queues) or '(none yet)')}"
        f"{' · ' + escape(note) if note else ''}</small>",
        f'<table style="{_STYLE}"><tr>{head}</tr><tr>{values}</tr></table>',
    ]
    if depth:
        parts.append(_table(("priority", "queued"), depth, "queued by priority"))
    if len(f.per_queue) > 1:
        parts.append(_table(_QUEUE_COLUMNS, f.per_queue, "queues"))
    if f.running_tasks:
        parts.append(_table(_RUNNING_COLUMNS, f.running_tasks, "running"))
    if f.workers:
        parts.append(_table(_WORKER_COLUMNS, f.workers, "workers"))
    parts.append("</div>")
    return "".join(parts)


def figures_text(f: Figures) -> str:
    """The plain-text fallback of one reading (one line of figures, then the workers)."""
    figures = "  ".join(f"{label}={format_number(getattr(f, field))}" for field, label in HEADLINE)
    lines = [f"taskq [{', '.join(f.queues) or 'no queues yet'}]  {figures}"]
    depth = " ".join(f"p{p}:{n}" for p, n in f.depth_by_priority.items() if n)
    if depth:
        lines.append(f"  queued by priority: {depth}")
    lines += [
        f"  worker {w['id']} {w['health']} processed={format_number(w['processed'])} current={len(w['current'])}"
        for w in f.workers
    ]
    return "\n".join(lines)


def render_html(snapshot: Snapshot, *, window_s: int | None = None, metric: str = DEFAULT_METRIC) -> str:
    """A static HTML table of ``snapshot`` (a :class:`taskq.Snapshot`).

    ``window_s``: the window the throughput and percentiles come from (one the snapshot
    holds; default its shortest). Each headline figure has a ``data-field`` attribute, as
    in the live widget, but the root's class is ``taskq-monitor-static``, so a browser test
    looking for ``.taskq-monitor`` finds only the live widget.
    """
    return figures_html(figures_of(snapshot, window_s=_window_of(snapshot, window_s), metric=metric))


def render_text(snapshot: Snapshot, *, window_s: int | None = None, metric: str = DEFAULT_METRIC) -> str:
    """The plain-text version of :func:`render_html`."""
    return figures_text(figures_of(snapshot, window_s=_window_of(snapshot, window_s), metric=metric))


def _window_of(snapshot: Snapshot, window_s: int | None) -> int:
    if window_s is not None:
        return window_s
    lengths = sorted({w.length_s for q in snapshot.queues for w in q.windows})
    return lengths[0] if lengths else 10


__all__ = ["HEADLINE", "figures_html", "figures_text", "render_html", "render_text"]
