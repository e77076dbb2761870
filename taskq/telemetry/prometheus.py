"""The Prometheus text exposition of a :class:`~taskq.telemetry.snapshot.Snapshot`
(``taskq metrics``).

We keep our own small writer rather than depend on ``prometheus_client``: the format is a
few lines of escaping, the core stays free of an extra dependency for ``taskq metrics``, and
tests/telemetry/test_prometheus.py proves the output parses with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from taskq.telemetry.histogram import LATENCY_METRICS, PERCENTILES
from taskq.telemetry.snapshot import COUNTERS, NO_LATENCY, Latency, Snapshot, WorkerHealth


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


class PrometheusWriter:
    """A minimal writer of the Prometheus text format (version 0.0.4): metric families
    with HELP and TYPE lines, escaped label values, one sample per line."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, **labels: str) -> None:
        """Add one sample; ``kind`` is 'gauge' or 'counter' (counter names end in _total)."""
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(name, kind, help_text)
        family.samples.append((labels, value))

    def text(self) -> str:
        """The exposition: each family's HELP and TYPE lines, then its samples."""
        lines: list[str] = []
        for family in self._families.values():
            help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
            lines.append(f"# HELP {family.name} {help_text}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, value in family.samples:
                label_text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
                series = f"{family.name}{{{label_text}}}" if label_text else family.name
                lines.append(f"{series} {_format_value(value)}")
        return "\n".join(lines) + "\n" if lines else ""


def _window_label(length_s: int) -> str:
    if length_s % 60 == 0:
        return f"{length_s // 60}m"
    return f"{length_s}s"


_HELP = {
    "taskq_tasks": "Tasks in each place of a queue now.",
    "taskq_queued_tasks": "Queued tasks per priority.",
    "taskq_overdue_leases": "Running tasks whose lease expired, not yet requeued.",
    "taskq_tasks_total": "Task transitions since the queue was created, by outcome.",
    "taskq_rate_per_second": "Task transitions per second over a recent window.",
    "taskq_latency_observations": "Latency observations in the window.",
    "taskq_latency_seconds": "Latency percentile (wait: ready to claimed; run; e2e: enqueued to succeeded), "
    "within 4.9 % (log buckets).",
    "taskq_retained_finished_tasks": "Finished task records Redis keeps until their TTL, estimated "
    "(dead exact; succeeded and cancelled: recent rate times the result TTL).",
    "taskq_redis_used_memory_bytes": "The Redis server's used_memory (INFO memory).",
    "taskq_workers": "Registered workers by health.",
    "taskq_worker_heartbeat_age_seconds": "Time since the worker's last heartbeat.",
    "taskq_worker_running_tasks": "Tasks the worker runs now.",
    "taskq_worker_processed_total": "Tasks the worker finished since it started.",
}


def prometheus_text(snapshot: Snapshot) -> str:
    """The snapshot's figures in the Prometheus text format (``taskq metrics``).

    Latency percentiles are gauges in seconds with ``metric``, ``window`` ('10s', '1m',
    '15m', 'all') and ``quantile`` labels, not a Prometheus histogram: the buckets are
    finer (10 %) than Prometheus histograms are meant to carry.
    """
    w = PrometheusWriter()

    def add(name: str, value: float, **labels: str) -> None:
        kind = "counter" if name.endswith("_total") else "gauge"
        w.add(name, kind, _HELP[name], value, **labels)

    for q in snapshot.queues:
        for state in ("queued", "scheduled", "running", "dead"):
            add("taskq_tasks", getattr(q, state), queue=q.queue, state=state)
    for q in snapshot.queues:
        for priority, n in q.by_priority.items():
            add("taskq_queued_tasks", n, queue=q.queue, priority=str(priority))
    for q in snapshot.queues:
        add("taskq_overdue_leases", q.overdue, queue=q.queue)
    for q in snapshot.queues:
        for name, n in q.counters.items():
            add("taskq_tasks_total", n, queue=q.queue, outcome=name)
    for q in snapshot.queues:
        for window in q.windows:
            label = _window_label(window.length_s)
            for name in COUNTERS:
                add("taskq_rate_per_second", window.rate(name), queue=q.queue, outcome=name, window=label)
    for q in snapshot.queues:
        spans: list[tuple[str, Mapping[str, Latency]]] = [("all", q.latency)]
        spans += [(_window_label(win.length_s), win.latency) for win in q.windows]
        for label, latencies in spans:
            for metric in LATENCY_METRICS:
                lat = latencies.get(metric, NO_LATENCY)
                add("taskq_latency_observations", lat.samples, queue=q.queue, metric=metric, window=label)
                for pname, per_mille in PERCENTILES:
                    value = lat.percentile_ms(pname)
                    if value is not None:
                        quantile = str(per_mille / 1000)
                        labels = {"queue": q.queue, "metric": metric, "window": label, "quantile": quantile}
                        add("taskq_latency_seconds", value / 1000, **labels)
    for q in snapshot.queues:
        if q.retained_finished is not None:
            add("taskq_retained_finished_tasks", q.retained_finished, queue=q.queue)
    if snapshot.used_memory_bytes is not None:
        add("taskq_redis_used_memory_bytes", snapshot.used_memory_bytes)
    by_health = dict.fromkeys((h.value for h in WorkerHealth), 0)
    for worker in snapshot.workers:
        by_health[worker.health.value] += 1
    for health, n in by_health.items():
        add("taskq_workers", n, health=health)
    for worker in snapshot.workers:
        age_s = worker.heartbeat_age_ms / 1000
        add("taskq_worker_heartbeat_age_seconds", age_s, worker=worker.id, health=worker.health.value)
    for worker in snapshot.workers:
        if worker.health is not WorkerHealth.GONE:
            add("taskq_worker_running_tasks", len(worker.current), worker=worker.id)
    for worker in snapshot.workers:
        if worker.processed is not None:
            add("taskq_worker_processed_total", worker.processed, worker=worker.id)
    return w.text()
