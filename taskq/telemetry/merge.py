"""A sharded queue's snapshot (:mod:`taskq.shards`): the snapshots of its base queue and
sub-queues merged into one :class:`~taskq.telemetry.snapshot.QueueSnapshot`. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from taskq.telemetry.histogram import LATENCY_METRICS
from taskq.telemetry.snapshot import NO_LATENCY, Latency, QueueSnapshot, WindowStats


def merge_latency(parts: Iterable[Latency]) -> Latency:
    """One latency from the same metric of several sub-queues: the samples summed, and each
    percentile the largest of the sub-queues' (the snapshot script returns percentiles, not
    histograms, so the exact one cannot be rebuilt; the true percentile of the whole lies
    between the smallest and the largest, and they agree when the sub-queues share the load
    evenly, as round-robin makes them)."""
    seen = [p for p in parts if p.samples > 0]
    if not seen:
        return NO_LATENCY
    if len(seen) == 1:
        return seen[0]

    def largest(values: Iterable[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return max(known) if known else None

    return Latency(
        sum(p.samples for p in seen),
        largest(p.p50_ms for p in seen),
        largest(p.p90_ms for p in seen),
        largest(p.p99_ms for p in seen),
        largest(p.p999_ms for p in seen),
    )


def _merge_latencies(parts: Sequence[Mapping[str, Latency]]) -> Mapping[str, Latency]:
    return MappingProxyType({m: merge_latency(p.get(m, NO_LATENCY) for p in parts) for m in LATENCY_METRICS})


def _sum_maps(parts: Iterable[Mapping[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for part in parts:
        for key, n in part.items():
            out[key] = out.get(key, 0) + n
    return out


def merge_queue_snapshots(queue: str, parts: Sequence[QueueSnapshot], running_limit: int) -> QueueSnapshot:
    """One :class:`QueueSnapshot` of a sharded queue from those of its base queue (first) and
    its sub-queues, named ``queue``: depths, counters, window counts and events summed; the
    soonest due time; the ``running_limit`` running tasks with the soonest lease deadlines;
    each window covering the span of all (its rate divides the summed counts by it); latency
    as :func:`merge_latency`; settings (aging, default priority) the base queue's, which
    ``configure_queue`` also wrote to every sub-queue."""
    base = parts[0]
    windows = []
    for i, w in enumerate(base.windows):
        same = [p.windows[i] for p in parts]
        windows.append(
            WindowStats(
                w.length_s,
                min(x.start_ms for x in same),
                max(x.end_ms for x in same),
                MappingProxyType(_sum_maps(x.counts for x in same)),
                _merge_latencies([x.latency for x in same]),
            )
        )
    depth = _sum_maps(p.by_priority for p in parts)
    dues = [p.next_due_ms for p in parts if p.next_due_ms is not None]
    running = sorted((t for p in parts for t in p.running_tasks), key=lambda t: (t.deadline_ms, t.id))
    retained = [p.retained_finished for p in parts]
    return QueueSnapshot(
        queue=queue,
        taken_ms=max(p.taken_ms for p in parts),
        queued=sum(p.queued for p in parts),
        by_priority=MappingProxyType({k: depth[k] for k in sorted(depth, reverse=True)}),
        scheduled=sum(p.scheduled for p in parts),
        next_due_ms=min(dues) if dues else None,
        running=sum(p.running for p in parts),
        overdue=sum(p.overdue for p in parts),
        dead=sum(p.dead for p in parts),
        counters=MappingProxyType(_sum_maps(p.counters for p in parts)),
        latency=_merge_latencies([p.latency for p in parts]),
        windows=tuple(windows),
        running_tasks=tuple(running[: max(0, running_limit)]),
        aging_s=base.aging_s,
        default_priority=base.default_priority,
        events_length=sum(p.events_length for p in parts),
        retained_finished=None if None in retained else sum(r for r in retained if r is not None),
        shards=len(parts) - 1,
    )
