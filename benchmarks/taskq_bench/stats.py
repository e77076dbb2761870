"""Latency summaries (exact percentiles) and an HDR-style log-linear histogram of samples.

Percentiles are exact (nearest rank on the sorted samples, no interpolation: taskq's
``nearest_rank_ms``), so a reported P99.9 is a latency that some task really had. The histogram is for plots (CDFs):
buckets grow geometrically, each about 1% wide, as in HdrHistogram with two significant
digits.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from taskq.telemetry import nearest_rank_ms

#: The quantiles every latency summary reports, by name, in per mille.
QUANTILES: dict[str, int] = {"p50": 500, "p90": 900, "p99": 990, "p999": 999}


def summarize_ms(values_ms: Iterable[float], unfinished: int = 0) -> dict[str, float | int | None]:
    """Count, mean, P50/P90/P99/P99.9 and max of latency samples in ms (3 decimals).

    Percentiles are taskq's one definition, :func:`taskq.telemetry.nearest_rank_ms` (the
    same the server-side histograms approximate). ``unfinished`` tasks count as samples
    larger than any finished one: a quantile that falls among them is ``None`` (unknown,
    beyond the run's end), never a flattering number.
    """
    ordered = sorted(values_ms)
    summary: dict[str, float | int | None] = {"count": len(ordered), "unfinished": unfinished}
    if not ordered:
        return summary | dict.fromkeys([*QUANTILES, "max", "mean"])
    with_unfinished = ordered + [math.inf] * unfinished
    for name, per_mille in QUANTILES.items():
        value = nearest_rank_ms(with_unfinished, per_mille)
        summary[name] = round(value, 3) if math.isfinite(value) else None
    summary["max"] = round(ordered[-1], 3) if unfinished == 0 else None
    summary["mean"] = round(statistics.fmean(ordered), 3)
    return summary


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class LogHistogram:
    """Counts of positive values in log-spaced buckets (``1 + precision`` apart) from ``lowest``.

    ``cdf()`` gives (upper bound, fraction at or below) pairs for plotting; values at or
    below ``lowest`` share the first bucket.
    """

    lowest: float = 0.001
    precision: float = 0.01
    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0

    def add(self, value: float) -> None:
        index = 0 if value <= self.lowest else math.ceil(math.log(value / self.lowest) / math.log1p(self.precision))
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1

    def upper_bound(self, index: int) -> float:
        return self.lowest * (1 + self.precision) ** index

    def cdf(self) -> list[tuple[float, float]]:
        points: list[tuple[float, float]] = []
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            points.append((round(self.upper_bound(index), 6), round(seen / self.total, 6)))
        return points

    @classmethod
    def of(cls, values: Iterable[float], lowest: float = 0.001, precision: float = 0.01) -> LogHistogram:
        histogram = cls(lowest, precision)
        for value in values:
            histogram.add(value)
        return histogram
