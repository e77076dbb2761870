"""What keeps a comparison fair by construction: the order systems run in each round, and the
machine's load around every measurement.

* **Order.** A shared machine's load drifts, and whichever system runs first sees a different
  machine from the one that runs last. Round *r* (from 1) runs the systems rotated by *r - 1*
  places, so over as many rounds as there are systems each one runs first once; with a
  ``seed`` the order is shuffled instead, reproducibly (the seed is recorded).
* **Load.** The 1-minute load average is read before and after each measurement and
  recorded, but it does not flag: on 2 cores a run's own previous measurement keeps it above
  1 per core (a quiet run flagged 204 of 205 figures). What flags a measurement (``loaded``,
  marked in the report) is the CPU that processes *outside* the benchmark's own process tree
  used during it (:mod:`taskq_bench.outside`): more than ``OUTSIDE_LIMIT`` of the machine
  (its cores x the wall time), and more than ``OUTSIDE_FLOOR_S`` seconds (clock-tick noise
  of short measurements). ``outside_share`` is recorded for every measurement.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from taskq_bench import outside

#: A measurement during which processes outside the benchmark used more than this share of the
#: machine's CPU (cores x wall time) is flagged: another workload shared the machine.
OUTSIDE_LIMIT = 0.10
#: ... and more than this many CPU seconds (below it, clock-tick rounding of a short measurement).
OUTSIDE_FLOOR_S = 0.05


def round_order(systems: Sequence[str], number: int, seed: int | None = None) -> list[str]:
    """The order of ``systems`` in round ``number`` (from 1): rotated by ``number - 1``, or, with
    ``seed``, shuffled by ``random.Random(f"{seed}:{number}")``."""
    items = list(systems)
    if not items:
        return items
    if seed is not None:
        random.Random(f"{seed}:{number}").shuffle(items)
        return items
    shift = (number - 1) % len(items)
    return items[shift:] + items[:shift]


def rotated(items: Sequence[Any], number: int) -> list[Any]:
    """``items`` rotated by ``number - 1`` places (the settings inside one system's round)."""
    if not items:
        return []
    shift = (number - 1) % len(items)
    return [*items[shift:], *items[:shift]]


def read_load() -> float:
    """The 1-minute load average now."""
    return round(os.getloadavg()[0], 2)


def cores() -> int:
    return os.cpu_count() or 1


@dataclass(slots=True)
class Load:
    """Around one measurement on a machine with ``cores`` cores: the 1-minute load average before
    and after, and the CPU seconds used meanwhile outside the benchmark's process tree and inside
    it, over ``wall_s`` (None where ``/proc`` is not there)."""

    before: float
    after: float | None = None
    cores: int = 1
    outside_s: float | None = None
    own_s: float | None = None
    wall_s: float | None = None

    @property
    def outside_share(self) -> float | None:
        """The share of the machine's CPU (cores x wall time) used outside the benchmark."""
        if self.outside_s is None or not self.wall_s:
            return None
        return round(self.outside_s / (self.wall_s * self.cores), 3)

    @property
    def loaded(self) -> bool:
        """True when processes outside the benchmark used more than ``OUTSIDE_LIMIT`` of the
        machine (and more than ``OUTSIDE_FLOOR_S``) during the measurement."""
        share = self.outside_share
        return share is not None and share > OUTSIDE_LIMIT and (self.outside_s or 0.0) > OUTSIDE_FLOOR_S

    def as_list(self) -> list[Any]:
        return [self.before, self.after, self.cores, self.outside_s, self.own_s, self.wall_s]


@contextmanager
def measured_load(
    read: Callable[[], float] | None = None,
    ncores: int | None = None,
    root: int | None = None,
    within: int | None = None,
) -> Iterator[Load]:
    """Read the load average and every process's CPU times before the block and after it
    (``read``: :func:`read_load` by default; ``root``: the benchmark's tree, default
    :func:`taskq_bench.outside.tree_root`; ``within``: see :func:`taskq_bench.outside.sample`)."""
    reading = read or read_load
    load = Load(reading(), None, ncores or cores())
    start = outside.sample(root, within)
    try:
        yield load
    finally:
        end = outside.sample(root, within)
        load.after = reading()
        if start is not None and end is not None:
            used = outside.usage(start, end)
            load.outside_s, load.own_s, load.wall_s = used.outside_s, used.own_s, used.wall_s


def load_fields(loads: Sequence[Load]) -> dict[str, Any]:
    """A row's load columns from the measurements behind it: the highest load average before
    and after, the highest outside share, and whether any of them was flagged."""
    if not loads:
        return {}
    afters = [load.after for load in loads if load.after is not None]
    shares = [load.outside_share for load in loads if load.outside_share is not None]
    return {
        "load_before": max(load.before for load in loads),
        "load_after": max(afters) if afters else None,
        "outside_share": max(shares) if shares else None,
        "loaded": any(load.loaded for load in loads),
    }
