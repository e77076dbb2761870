"""From a taskq :class:`~taskq.Snapshot` to the plain figures the widgets show.

Pure functions, no I/O and no widget code: the monitor's traitlets, the static HTML
fallback and the tests all read the same numbers, computed here from the core telemetry
only (nothing is counted or remembered on the side, except the short sparkline history,
which is a list of past readings of these same figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskq import Latency, LimiterState, QueueSnapshot, ScheduleInfo, Snapshot, WorkerSnapshot

#: Priorities in display order, most urgent first.
PRIORITIES = tuple(range(10, 0, -1))
#: The latency metric the monitor's P50/P99 report by default (enqueued to succeeded).
DEFAULT_METRIC = "e2e"


@dataclass(frozen=True, slots=True)
class Figures:
    """Everything one monitor reading shows, as plain JSON-ready values."""

    taken_ms: int
    queues: list[str]
    pending: int
    queued: int
    running: int
    scheduled: int
    dead: int
    overdue: int
    succeeded: int
    failed: int
    retried: int
    enqueued: int
    throughput: float
    """Tasks succeeded per second over the window (all watched queues together)."""
    p50_ms: float | None
    p99_ms: float | None
    """The worst (highest) percentile among the watched queues over the window; None when
    no task finished in the window."""
    latency_samples: int
    depth_by_priority: dict[str, int]
    """Queued tasks per priority, keys "10" (most urgent) down to "1", every key present."""
    per_queue: list[dict[str, Any]]
    running_tasks: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    schedules: list[dict[str, Any]] = field(default_factory=list)
    """The schedules of the watched queues: last and next fire time (taskq.schedules)."""
    rate_limits: list[dict[str, Any]] = field(default_factory=list)
    """The rate limiters of the watched queues and when each next lets a task run."""

    def point(self) -> dict[str, Any]:
        """One sparkline point: the time and the figures the history keeps."""
        return {
            "t_ms": self.taken_ms,
            "throughput": self.throughput,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "pending": self.pending,
        }


def _worst(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _window_latency(q: QueueSnapshot, window_s: int, metric: str) -> Latency:
    return q.window(window_s).latency.get(metric, Latency(0))


def queue_row(q: QueueSnapshot, window_s: int, metric: str = DEFAULT_METRIC) -> dict[str, Any]:
    """One queue's figures (a row of the per-queue table)."""
    window = q.window(window_s)
    latency = _window_latency(q, window_s, metric)
    return {
        "queue": q.queue,
        "pending": q.pending,
        "queued": q.queued,
        "running": q.running,
        "scheduled": q.scheduled,
        "dead": q.dead,
        "overdue": q.overdue,
        "succeeded": q.counters.get("succeeded", 0),
        "failed": q.counters.get("failed", 0),
        "retried": q.counters.get("retried", 0),
        "throughput": round(window.rate("succeeded"), 3),
        "p50_ms": _round(latency.p50_ms),
        "p99_ms": _round(latency.p99_ms),
    }


def running_row(task: Any, queue: str) -> dict[str, Any]:
    """A running task (a :class:`taskq.RunningTask`) with its lease age."""
    return {
        "id": task.id,
        "name": task.name,
        "queue": queue,
        "worker": task.worker,
        "attempt": task.attempt,
        "priority": task.priority,
        "age_ms": task.age_ms,
        "lease_left_ms": task.lease_left_ms,
        "progress": progress_text(task.progress),
    }


def progress_text(progress: dict[str, Any] | None) -> str:
    """A running task's ``current_task().progress(...)`` as "done/total message" ('' if none)."""
    if not progress:
        return ""
    done, total = progress.get("done"), progress.get("total")
    text = f"{done:g}" if isinstance(done, (int, float)) else ""
    if isinstance(total, (int, float)):
        text += f"/{total:g}"
    return f"{text} {progress.get('message') or ''}".strip()


def worker_row(w: WorkerSnapshot) -> dict[str, Any]:
    """A worker with its health and current tasks."""
    return {
        "id": w.id,
        "health": w.health.value,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "processed": w.processed,
        "failed": w.failed,
        "current": list(w.current),
        "heartbeat_age_ms": w.heartbeat_age_ms,
    }


def schedule_row(info: ScheduleInfo, taken_ms: int) -> dict[str, Any]:
    """A schedule: what it runs, when, and its last and next fire times."""
    s = info.schedule
    return {
        "name": s.name,
        "task": s.task,
        "queue": s.queue,
        "every": s.every,
        "paused": s.paused,
        "last_fire_ms": info.last_fire_ms,
        "next_fire_in_ms": None if info.next_fire_ms is None else info.next_fire_ms - taken_ms,
    }


def limiter_row(queue: str, state: LimiterState, taken_ms: int) -> dict[str, Any]:
    """A rate limiter: its limit, and how long until it next lets a task run (0: open)."""
    wait = None if state.next_allowed_ms is None else max(0, state.next_allowed_ms - taken_ms)
    return {"queue": queue, "limiter": state.limiter, "limit": str(state.limit), "open_in_ms": wait}


def _serves(w: WorkerSnapshot, queues: Sequence[str]) -> bool:
    return not w.queues or any(q in queues for q in w.queues)


def figures_of(
    snapshot: Snapshot,
    *,
    window_s: int,
    metric: str = DEFAULT_METRIC,
    queues: Sequence[str] | None = None,
) -> Figures:
    """The monitor's figures from ``snapshot``, which must hold a ``window_s`` window.
    ``queues`` limits the workers to those serving one of them (None: every worker)."""
    qs = snapshot.queues
    depth = dict.fromkeys((str(p) for p in PRIORITIES), 0)
    for q in qs:
        for priority, n in q.by_priority.items():
            depth[str(priority)] = depth.get(str(priority), 0) + n

    def total(name: str) -> int:
        return sum(q.counters.get(name, 0) for q in qs)

    latencies = [_window_latency(q, window_s, metric) for q in qs]
    running = [running_row(t, q.queue) for q in qs for t in q.running_tasks]
    running.sort(key=lambda r: -(r["age_ms"] or 0))
    names = [q.queue for q in qs]
    watched = names if queues is None else list(queues)
    workers = [worker_row(w) for w in snapshot.workers if queues is None or _serves(w, watched)]
    return Figures(
        taken_ms=snapshot.taken_ms,
        queues=names,
        pending=sum(q.pending for q in qs),
        queued=sum(q.queued for q in qs),
        running=sum(q.running for q in qs),
        scheduled=sum(q.scheduled for q in qs),
        dead=sum(q.dead for q in qs),
        overdue=sum(q.overdue for q in qs),
        succeeded=total("succeeded"),
        failed=total("failed"),
        retried=total("retried"),
        enqueued=total("enqueued"),
        throughput=round(sum(q.window(window_s).rate("succeeded") for q in qs), 3),
        p50_ms=_round(_worst([lat.p50_ms for lat in latencies])),
        p99_ms=_round(_worst([lat.p99_ms for lat in latencies])),
        latency_samples=sum(lat.samples for lat in latencies),
        depth_by_priority=depth,
        per_queue=[queue_row(q, window_s, metric) for q in qs],
        running_tasks=running,
        workers=workers,
        schedules=[schedule_row(i, snapshot.taken_ms) for i in snapshot.schedules if i.schedule.queue in watched],
        rate_limits=[
            limiter_row(q, state, snapshot.taken_ms)
            for q, states in snapshot.rate_limits.items()
            if q in watched
            for state in states
        ],
    )


def add_point(history: Sequence[Mapping[str, Any]], point: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """The sparkline history with ``point`` added: one point per second of server time (a
    reading in the same second as the last point replaces it), at most ``limit`` points."""
    out = [dict(p) for p in history]
    if out and out[-1]["t_ms"] // 1000 == point["t_ms"] // 1000:
        out[-1] = dict(point)
    else:
        out.append(dict(point))
    return out[-limit:] if limit > 0 else []


def format_number(value: float | int | None, digits: int = 1) -> str:
    """How a figure reads on screen: integers as such, others with ``digits`` decimals, and
    an en dash for no data."""
    if value is None:
        return "\u2013"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


__all__ = ["DEFAULT_METRIC", "PRIORITIES", "Figures", "add_point", "figures_of", "format_number", "queue_row"]
