"""Rich rendering of what the commands fetch: stats tables, event lines, the workers table,
a task's record, the dead-letter table and the task registry. No I/O beyond printing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.columns import Columns
from rich.console import Group, JustifyMethod, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskq.cli.common import format_ms
from taskq.task import Task
from taskq.telemetry import (
    COUNTERS,
    LATENCY_METRICS,
    Event,
    QueueSnapshot,
    Snapshot,
    WindowStats,
    WorkerHealth,
    WorkerSnapshot,
    to_plain,
)

if TYPE_CHECKING:
    from taskq import RegisteredTask, ServerInfo

#: Where a queue's tasks are right now.
PLACES = ("queued", "scheduled", "running", "dead")


def _ms_text(value_ms: float | None) -> str:
    if value_ms is None:
        return "-"
    if value_ms >= 10_000:
        return f"{value_ms / 1000:.1f} s"
    if value_ms >= 100:
        return f"{value_ms:.0f} ms"
    return f"{value_ms:.3g} ms"


def _window_title(length_s: int) -> str:
    return f"{length_s // 60} min" if length_s % 60 == 0 else f"{length_s} s"


#: A section of a queue's stats table: a title and a function giving its (label, value) rows.
StatsSection = tuple[str, Callable[[QueueSnapshot], list[tuple[str, str]]]]


def _place_rows(q: QueueSnapshot) -> list[tuple[str, str]]:
    rows = [(place, str(getattr(q, place))) for place in PLACES]
    if q.overdue:
        rows[2] = ("running", f"{q.running} ({q.overdue} overdue)")
    return rows


def _priority_rows(q: QueueSnapshot) -> list[tuple[str, str]]:
    return [(f"priority {p}", str(n)) for p, n in q.by_priority.items()]


def counter_values(q: QueueSnapshot) -> dict[str, int]:
    """The standard counters (0 when never incremented), then any others the scripts keep."""
    values = {name: q.counters.get(name, 0) for name in COUNTERS}
    values.update(sorted((k, v) for k, v in q.counters.items() if k not in values))
    return values


def _counter_rows(q: QueueSnapshot) -> list[tuple[str, str]]:
    return [(name, str(n)) for name, n in counter_values(q).items()]


#: Sections of the left-hand table of `taskq stats`, top to bottom.
STATS_SECTIONS: tuple[StatsSection, ...] = (
    ("now", _place_rows),
    ("queued by", _priority_rows),
    ("counters", _counter_rows),
)
#: Rows of the right-hand table: a label and the figure of one window.
WINDOW_ROWS: tuple[tuple[str, Callable[[WindowStats], str]], ...] = (
    ("succeeded/s", lambda w: f"{w.rate('succeeded'):.1f}"),
    ("failed/s", lambda w: f"{w.rate('failed'):.1f}"),
    ("enqueued/s", lambda w: f"{w.rate('enqueued'):.1f}"),
    ("dead", lambda w: str(w.total("dead"))),
    *(
        (f"{metric} {pname}", lambda w, m=metric, p=pname: _ms_text(w.latency[m].percentile_ms(p)))
        for metric in LATENCY_METRICS
        for pname in ("p50", "p90", "p99", "p999")
    ),
)


def counts_to_dict(q: QueueSnapshot) -> dict[str, Any]:
    """A queue's stats as JSON: places, pending, counters, depth by priority, lifetime
    latency, and per window its counts, rates and latency percentiles."""
    record: dict[str, Any] = to_plain(q)
    record["counters"] = counter_values(q)
    for plain, window in zip(record["windows"], q.windows, strict=True):
        plain["rates"] = {name: round(window.rate(name), 3) for name in window.counts}
    return record


def queue_table(q: QueueSnapshot) -> Table:
    table = Table(title=Text(f"queue {q.queue}", style="bold"), title_justify="left")
    table.add_column("", style="dim")
    table.add_column("", no_wrap=True)
    table.add_column("tasks", justify="right")
    first = True
    for title, rows_of in STATS_SECTIONS:
        rows = rows_of(q)
        if not rows:
            continue
        if not first:
            table.add_section()
        first = False
        for j, (label, value) in enumerate(rows):
            table.add_row(title if j == 0 else "", label, value)
    return table


def window_table(q: QueueSnapshot) -> Table:
    """Throughput and latency percentiles per window, then over the queue's lifetime."""
    table = Table(title=Text("rates and latency", style="bold"), title_justify="left")
    table.add_column("", style="dim", no_wrap=True)
    for w in q.windows:
        table.add_column(f"last {_window_title(w.length_s)}", justify="right")
    table.add_column("all time", justify="right")
    for label, figure in WINDOW_ROWS:
        lifetime = ""
        metric, _, pname = label.partition(" ")
        if metric in LATENCY_METRICS:
            lifetime = _ms_text(q.latency[metric].percentile_ms(pname))
        table.add_row(label, *(figure(w) for w in q.windows), lifetime)
    return table


def _workers_line(snapshot: Snapshot) -> Text:
    counts = dict.fromkeys(WorkerHealth, 0)
    for w in snapshot.workers:
        counts[w.health] += 1
    parts = ", ".join(f"{n} {h.value}" for h, n in counts.items())
    return Text(f"workers: {parts} (taskq workers)", style="dim")


def _memory_line(snapshot: Snapshot) -> Text:
    """Redis memory (None: no INFO) and the finished records the queues keep until their TTL."""
    used_bytes = snapshot.used_memory_bytes
    used = "unknown (no INFO)" if used_bytes is None else f"{used_bytes / 2**20:.1f} MiB"
    kept = sum(q.retained_finished or 0 for q in snapshot.queues)
    return Text(f"Redis memory: {used}; finished records kept until their TTL: ~{kept} (estimate)", style="dim")


#: ``taskq stats`` draws the tables of at most this many queues, the busiest (most pending, then
#: dead); the others are summed up in one line. Drawing every table took 10 s for 500 queues
#: and would take minutes for 10,000 (``make bignum``, docs/RELIABILITY.md).
MAX_QUEUE_TABLES = 20


def _others_line(others: Sequence[QueueSnapshot]) -> Text:
    pending = sum(q.pending for q in others)
    dead = sum(q.dead for q in others)
    return Text(
        f"... and {len(others):,} more queues ({pending:,} pending, {dead:,} dead in all): "
        "name the ones to show (taskq stats QUEUE ...) or use --json for every one",
        style="yellow",
    )


def render_stats(snapshot: Snapshot, max_queues: int = MAX_QUEUE_TABLES) -> RenderableType:
    if not snapshot.queues:
        return Text("no queues yet: enqueue a task first (taskq enqueue NAME)", style="yellow")
    busiest = sorted(snapshot.queues, key=lambda q: (-q.pending, -q.dead, q.queue))[:max_queues]
    shown = {q.queue for q in busiest}
    per_queue: list[RenderableType] = [
        Columns([queue_table(q), window_table(q)], padding=(0, 2)) for q in snapshot.queues if q.queue in shown
    ]
    others = [q for q in snapshot.queues if q.queue not in shown]
    if others:
        per_queue.append(_others_line(others))
    return Group(*per_queue, _workers_line(snapshot), _memory_line(snapshot))


def server_line(info: ServerInfo) -> Text:
    """Which server the client found or started, and how (``--url``, the environment, ...)."""
    how = {"explicit": "--url", "env": "from the environment", "localhost": "on localhost"}.get(
        info.source, info.source
    )
    kind = f", {info.kind}" if info.kind else ""
    return Text(f"server: {info.url} ({how}{kind})", style="dim")


def stats_json(snapshot: Snapshot, info: ServerInfo) -> dict[str, Any]:
    """``taskq stats --json``: the server, then each queue's figures."""
    return {
        "server": dataclasses.asdict(info),
        "used_memory_bytes": snapshot.used_memory_bytes,
        "queues": [counts_to_dict(q) for q in snapshot.queues],
    }


def event_line(event: Event) -> Text:
    """One event as a line: time, queue, type, task id, then priority, attempt and worker."""
    stamp = datetime.fromtimestamp(event.timestamp_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
    style = {"dead": "red", "retried": "yellow", "succeeded": "green", "requeued": "magenta"}.get(event.type, "")
    line = Text(f"{stamp} ", style="dim")
    line.append(f"{event.queue:<12} ")
    line.append(f"{event.type:<16}", style=style)
    line.append(event.task_id)
    details = [f"p{event.priority}" if event.priority is not None else ""]
    if event.attempt is not None:
        details.append(f"attempt {event.attempt}")
    if event.worker:
        details.append(f"worker {event.worker}")
    line.append("  " + "  ".join(d for d in details if d), style="dim")
    return line


def _age_text(ms: int) -> str:
    if ms < 1000:
        return f"{ms} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min"


def workers_table(workers: Sequence[WorkerSnapshot]) -> Table:
    table = Table(title=Text("workers", style="bold"), title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("id", "left"),
        ("health", "left"),
        ("queues", "left"),
        ("running", "right"),
        ("processed", "right"),
        ("failed", "right"),
        ("heartbeat", "right"),
        ("up", "right"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    style = {WorkerHealth.ALIVE: "green", WorkerHealth.STALE: "yellow", WorkerHealth.GONE: "red"}
    for w in workers:
        up = "-" if w.started_ms is None else _age_text(max(0, w.heartbeat_ms - w.started_ms))
        running = "-" if w.health is WorkerHealth.GONE else f"{len(w.current)}/{w.concurrency or '?'}"
        table.add_row(
            w.id,
            Text(w.health.value, style=style[w.health]),
            ",".join(w.queues) or "-",
            running,
            "-" if w.processed is None else str(w.processed),
            "-" if w.failed is None else str(w.failed),
            f"{_age_text(w.heartbeat_age_ms)} ago",
            up,
        )
    return table


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def task_rows(task: Task) -> list[tuple[str, str]]:
    rows = [
        ("id", task.id),
        ("name", task.name),
        ("queue", task.queue),
        ("status", task.status.value + (" (cancel requested)" if task.cancel_requested else "")),
        ("priority", str(task.priority)),
        ("attempts", f"{task.attempts} (max retries {task.max_retries}, {task.retries_left} left)"),
        ("args", _json_text(task.args)),
        ("kwargs", _json_text(task.kwargs)),
        ("enqueued", format_ms(task.enqueued_ms)),
        ("due", format_ms(task.due_ms)),
        ("started", format_ms(task.started_ms)),
        ("finished", format_ms(task.finished_ms)),
        ("timeout", "-" if task.timeout_s is None else f"{task.timeout_s:g} s"),
        ("worker", task.worker or "-"),
        ("idempotency key", task.idempotency_key or "-"),
    ]
    if task.result is not None:
        rows.append(("result", _json_text(task.result)))
    return rows


def task_renderables(task: Task) -> list[RenderableType]:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in task_rows(task):
        table.add_row(label, value)
    parts: list[RenderableType] = [table]
    if task.error_type or task.error:
        parts.append(Text(f"{task.error_type or 'error'}: {task.error or ''}", style="red"))
    if task.traceback:
        parts.append(Panel(Text(task.traceback), title="traceback", title_align="left", border_style="red"))
    return parts


def _short_time(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%m-%d %H:%M")


def dead_table(tasks: Sequence[Task]) -> Table:
    """Dead tasks, one line each even at 80 columns: id, tries and time never shrink (the id
    is what you copy); name and error are cut short instead (``taskq task show ID`` has them)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    table.add_column("id", no_wrap=True, min_width=max((len(t.id) for t in tasks), default=2))
    table.add_column("name", no_wrap=True, overflow="ellipsis", min_width=6, max_width=24, ratio=1)
    table.add_column("tries", justify="right", no_wrap=True, min_width=5)
    table.add_column("died", no_wrap=True, min_width=11)
    table.add_column("error", no_wrap=True, overflow="ellipsis", min_width=8, max_width=60, ratio=2)
    for t in tasks:
        error = f"{t.error_type or ''}: {t.error or ''}".strip(": ")
        table.add_row(t.id, t.name, str(t.attempts), _short_time(t.finished_ms), error)
    return table


def registry_table(tasks: Sequence[RegisteredTask], now_ms: int) -> Table:
    """The task names workers registered: queue, options, and when a worker last said so."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    table.add_column("name", overflow="fold")
    table.add_column("queue", overflow="fold")
    table.add_column("prio", justify="right", no_wrap=True)
    table.add_column("retries", justify="right", no_wrap=True)
    table.add_column("timeout", justify="right", no_wrap=True)
    table.add_column("seen", justify="right", no_wrap=True)
    for t in tasks:
        timeout = "-" if t.timeout_s is None else f"{t.timeout_s:g} s"
        seen = f"{_age_text(max(0, now_ms - t.last_seen_ms))} ago"
        priority = "-" if t.priority is None else str(t.priority)
        table.add_row(t.name, t.queue, priority, str(t.max_retries), timeout, seen)
    return table
