"""Latency histogram buckets, as the scripts keep them (``lua/lib/common.lua``), and the
one percentile definition of taskq.

Bucket 0 holds values under 1 ms; bucket ``b >= 1`` holds ``[1.1^(b-1), 1.1^b)`` ms. A
bucket reports its geometric midpoint, so a percentile read off the histogram is within
:data:`RELATIVE_ERROR` (4.9 %) of the true value.

**Percentile definition: nearest rank.** The q-th percentile of n values is the value at
rank ``ceil(q * n)`` of the sorted values (1-based; rank 1 for q * n <= 1): always one of
the observed values, never interpolated. The scripts read the histogram's percentiles
with this rank, :func:`nearest_rank_ms` computes it exactly from samples (integer
arithmetic), and benchmarks use it too. ``numpy.percentile(values, q * 100,
method="inverted_cdf")`` is the same definition, but computes ``q * n`` in floating point:
where that product is a whole number it can land one rank higher (p99.9 of 1000 values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from taskq.errors import InvalidOption

BUCKET_BASE = 1.1
#: Highest bucket the scripts use (lua/lib/common.lua): it holds everything from a year up.
MAX_BUCKET = 255
#: Largest relative error of a percentile read off a bucket >= 1 (its geometric midpoint).
RELATIVE_ERROR = math.sqrt(BUCKET_BASE) - 1
LATENCY_METRICS = ("wait", "run", "e2e")
"""The latencies every queue measures: ``wait`` (ready → claimed), ``run`` (claimed → finished),
``e2e`` (enqueued → succeeded)."""
#: Percentiles every latency reports: (name, per mille).
PERCENTILES = (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999))


def bucket_of(value_ms: float) -> int:
    """The histogram bucket of a latency, as the scripts compute it."""
    if value_ms < 1:
        return 0
    return min(MAX_BUCKET, math.floor(math.log(value_ms) / math.log(BUCKET_BASE)) + 1)


def bucket_bounds_ms(bucket: int) -> tuple[float, float]:
    """The values bucket ``bucket`` holds: ``[low, high)`` ms."""
    if bucket <= 0:
        return 0.0, 1.0
    return BUCKET_BASE ** (bucket - 1), BUCKET_BASE**bucket


def bucket_value_ms(bucket: int) -> float:
    """The value a bucket reports: its geometric midpoint (0.5 ms for bucket 0)."""
    if bucket <= 0:
        return 0.5
    return float(BUCKET_BASE ** (bucket - 0.5))


#: What each bucket reports, by bucket (decoding reads it once per percentile).
BUCKET_VALUES_MS = tuple(bucket_value_ms(b) for b in range(MAX_BUCKET + 1))


def nearest_rank_ms(values_ms: Sequence[float], per_mille: int) -> float:
    """The exact nearest-rank percentile of ``values_ms`` (taskq's one definition, see the
    module docstring; the histogram approximates it): the value at rank ceil(q * n) of the
    sorted values, q = ``per_mille`` / 1000."""
    if not values_ms:
        raise InvalidOption("no values")
    ordered = sorted(values_ms)
    rank = max(1, (per_mille * len(ordered) + 999) // 1000)
    return ordered[rank - 1]


__all__ = [
    "BUCKET_BASE",
    "BUCKET_VALUES_MS",
    "LATENCY_METRICS",
    "MAX_BUCKET",
    "PERCENTILES",
    "RELATIVE_ERROR",
    "bucket_bounds_ms",
    "bucket_of",
    "bucket_value_ms",
    "nearest_rank_ms",
]
