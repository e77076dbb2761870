"""What keeps a comparison fair by construction: the order systems run in each round, and the
machine's load around every measurement.

* **Order.** A shared machine's load drifts, and whichever system runs first sees a different
  machine from the one that runs last. Round *r* (from 1) runs the systems rotated by *r - 1*
  places, so over as many rounds as there are systems each one runs first once; with a
  ``seed`` the order is shuffled instead, reproducibly (the seed is recorded).
* **Load.** The 1-minute load average is read before and after each measurement; a
  measurement that *started* above ``LOAD_LIMIT_PER_CORE`` per core is flagged (``loaded``)
  and the report marks it. :func:`read_load` is the one reading, so tests can inject one.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

#: A measurement that starts with the 1-minute load average above this, per core, is flagged.
LOAD_LIMIT_PER_CORE = 1.0


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
    """The 1-minute load average around one measurement, on a machine with ``cores`` cores."""

    before: float
    after: float | None = None
    cores: int = 1

    @property
    def loaded(self) -> bool:
        """True when the measurement started above ``LOAD_LIMIT_PER_CORE`` per core."""
        return self.before > LOAD_LIMIT_PER_CORE * self.cores


@contextmanager
def measured_load(read: Callable[[], float] | None = None, ncores: int | None = None) -> Iterator[Load]:
    """Read the load before the block and after it (``read``: :func:`read_load` by default)."""
    reading = read or read_load
    load = Load(reading(), None, ncores or cores())
    try:
        yield load
    finally:
        load.after = reading()


def load_fields(loads: Sequence[Load]) -> dict[str, Any]:
    """A row's load columns from the measurements behind it: the highest load before and after,
    and whether any of them started loaded."""
    if not loads:
        return {}
    afters = [load.after for load in loads if load.after is not None]
    return {
        "load_before": max(load.before for load in loads),
        "load_after": max(afters) if afters else None,
        "loaded": any(load.loaded for load in loads),
    }
