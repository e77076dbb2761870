"""Suites: how much of everything a run measures. ``short`` for a quick comparison (a few
minutes per system), ``full`` for figures worth publishing, ``tiny`` and ``smoke`` for
tests, ``notebook`` for the benchmark notebook's quick run (some 15 s per system, two offered
loads), ``readme`` for the README's tables (``short``'s grid and rounds, smaller and fewer runs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from taskq_bench.systems.base import Workload


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    enqueue_count: int
    """Tasks per producer process in a single-enqueue run."""
    bulk_count: int
    """Tasks per producer process in a bulk-enqueue run (in calls of ``bulk_batch``)."""
    bulk_batch: int
    producers: tuple[int, ...]
    """Producer process counts for the enqueue runs."""
    enqueue_reps: int
    drain_count: int
    """No-op tasks pre-filled for each drain run."""
    drain_reps: int
    drain_timeout_s: float
    """A drain still running after this long is stopped and reported as partial."""
    workloads: tuple[Workload, ...]
    """Extra drain workloads at the best setting: cpu, sleep, mix."""
    workload_count: int
    rates: tuple[float, ...]
    """Offered loads (tasks/s) for the open-loop latency runs."""
    latency_s: float
    """Seconds of offered load per rate (longer at low rates: at least ``latency_min_samples``)."""
    latency_min_samples: int
    latency_grace_s: float
    """How long after the last send tasks may still finish before they count as unfinished."""
    scaling_processes: tuple[int, ...] = ()
    scaling_concurrency: tuple[int, ...] = ()
    system_timeout_s: float = 1800.0
    """Upper bound on one system's whole run."""
    max_settings: int | None = None
    """Try only this many of an adapter's worker settings (smoke runs)."""
    drain_workloads: tuple[Workload, ...] = ("io", "noop")
    """What the drain experiment measures at every setting: the I/O task (the headline) and the no-op."""
    grid: tuple[int, ...] = ()
    """Concurrency per process tried besides each system's defaults, with 1 and with 2 processes."""
    rounds: int = 1
    """Rounds (systems rotated each round) when ``--rounds`` is not given; published figures need 3 or more."""

    def grid_processes(self) -> tuple[int, ...]:
        """Process counts of the drain settings: one process, and two (the 2-core settings)."""
        return (1,) if self.max_settings == 1 else (1, 2)

    def latency_count(self, rate_per_s: float) -> int:
        return max(int(rate_per_s * self.latency_s), min(self.latency_min_samples, int(rate_per_s * 30)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The concurrency grid of the short and full suites (a system that cannot run a point reports why).
GRID = (1, 10, 50, 100, 200)

SUITES: dict[str, Suite] = {
    "tiny": Suite(
        name="tiny", enqueue_count=200, bulk_count=500, bulk_batch=250, producers=(1,), enqueue_reps=1,
        drain_count=200, drain_reps=1, drain_timeout_s=20, workloads=(), workload_count=0,
        rates=(100.0,), latency_s=1.0, latency_min_samples=100, latency_grace_s=5, system_timeout_s=120,
    ),
    "smoke": Suite(
        name="smoke", enqueue_count=50, bulk_count=100, bulk_batch=50, producers=(1,), enqueue_reps=1,
        drain_count=50, drain_reps=1, drain_timeout_s=20, workloads=(), workload_count=0,
        rates=(50.0,), latency_s=0.5, latency_min_samples=25, latency_grace_s=5, system_timeout_s=90, max_settings=1,
        drain_workloads=("io",),
    ),
    "notebook": Suite(
        name="notebook", enqueue_count=200, bulk_count=1000, bulk_batch=250, producers=(1,), enqueue_reps=1,
        drain_count=1000, drain_reps=1, drain_timeout_s=10, workloads=(), workload_count=0,
        rates=(200.0, 2000.0), latency_s=0.5, latency_min_samples=100, latency_grace_s=3,
        system_timeout_s=90, max_settings=1,
    ),
    "short": Suite(
        name="short", enqueue_count=5000, bulk_count=20_000, bulk_batch=1000, producers=(1, 4), enqueue_reps=3,
        drain_count=20_000, drain_reps=1, drain_timeout_s=8, workloads=("cpu", "sleep", "mix"),
        workload_count=3000, rates=(200.0, 1000.0, 2000.0, 5000.0), latency_s=3.0, latency_min_samples=1000,
        latency_grace_s=5, system_timeout_s=3600, grid=GRID, rounds=3,
    ),
    # The README's run: the short suite's grid, rounds and offered loads up to 2,000/s with half
    # the drain size and no extra workloads, so a few systems finish within the hour on 2 cores.
    "readme": Suite(
        name="readme", enqueue_count=3000, bulk_count=20_000, bulk_batch=1000, producers=(1,), enqueue_reps=3,
        drain_count=10_000, drain_reps=1, drain_timeout_s=8, workloads=(), workload_count=0,
        rates=(200.0, 1000.0, 2000.0), latency_s=3.0, latency_min_samples=1000, latency_grace_s=5,
        system_timeout_s=3600, grid=GRID, rounds=3,
    ),
    "full": Suite(
        name="full", enqueue_count=20_000, bulk_count=200_000, bulk_batch=1000, producers=(1, 2, 4),
        enqueue_reps=5, drain_count=100_000, drain_reps=1, drain_timeout_s=60, workloads=("cpu", "sleep", "mix"),
        workload_count=20_000, rates=(100.0, 200.0, 500.0, 1000.0, 2000.0, 3000.0, 5000.0, 7500.0, 10_000.0),
        latency_s=15.0, latency_min_samples=5000, latency_grace_s=20, scaling_processes=(1, 2, 3, 4),
        scaling_concurrency=(1, 4, 16, 64, 256), system_timeout_s=14_400, grid=GRID, rounds=3,
    ),
}  # fmt: skip
