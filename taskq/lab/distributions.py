"""The lab's distributions: arrival processes (``.times(n, rng)``) and service-time
distributions (``.sample(n, rng)``, ``.mean_s``, ``.second_moment``), frozen dataclasses
validated on construction; and :class:`LabError`, the lab's one error. No I/O.
``taskq.lab.model`` re-exports every name here."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from taskq import ValidationError


class LabError(ValidationError):
    """A lab model is invalid (a workload, an arrival process, a service distribution, a
    configuration), or a frame does not have the lab's shape. Nothing was run."""


def _number(owner: str, name: str, value: object, *, minimum: float = 0.0, strict: bool = True) -> float:
    """``value`` as a float: a finite number above ``minimum`` (or at least it when not strict)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LabError(f"{owner}: {name} must be a finite number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise LabError(f"{owner}: {name} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def _integer(owner: str, name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise LabError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------------
# Arrival processes: .times(n, rng) -> sorted arrival instants (s)


class Arrivals(Protocol):
    """An arrival process: ``times(n, rng)`` gives ``n`` non-decreasing instants (s)."""

    @property
    def rate_per_s(self) -> float: ...

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Poisson:
    """Poisson arrivals: independent exponential gaps of mean ``1 / rate_per_s``; the first
    task arrives one gap after the start."""

    rate_per_s: float

    def __post_init__(self) -> None:
        _number("Poisson", "rate_per_s", self.rate_per_s)

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.cumsum(rng.exponential(1.0 / self.rate_per_s, n))


@dataclass(frozen=True, slots=True)
class Fixed:
    """Evenly spaced arrivals, ``rate_per_s`` a second, the first at 0."""

    rate_per_s: float

    def __post_init__(self) -> None:
        _number("Fixed", "rate_per_s", self.rate_per_s)

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.arange(n, dtype=float) / self.rate_per_s


@dataclass(frozen=True, slots=True)
class Bursts:
    """``size`` tasks at once every ``every_s`` seconds, the first burst at 0."""

    size: int
    every_s: float

    def __post_init__(self) -> None:
        _integer("Bursts", "size", self.size, minimum=1)
        _number("Bursts", "every_s", self.every_s)

    @property
    def rate_per_s(self) -> float:
        return self.size / self.every_s

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return (np.arange(n) // self.size) * float(self.every_s)


@dataclass(frozen=True, slots=True)
class Trace:
    """Arrival instants replayed as given (s from the start, non-decreasing, >= 0)."""

    times_s: tuple[float, ...]

    def __post_init__(self) -> None:
        values = tuple(_number("Trace", "a time", t, strict=False) for t in self.times_s)
        if not values:
            raise LabError("Trace: no arrival times")
        if any(b < a for a, b in itertools.pairwise(values)):
            raise LabError("Trace: arrival times must be non-decreasing")
        object.__setattr__(self, "times_s", values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], column: str | None = None) -> Trace:
        """One time per line, or (with ``column``) that column of a CSV file with a header."""
        frame = pd.read_csv(Path(path), header=0 if column else None)
        try:
            values = frame[column if column else frame.columns[0]]
        except KeyError:
            raise LabError(f"Trace: {path} has no column {column!r}: {list(frame.columns)}") from None
        if not pd.api.types.is_numeric_dtype(values):
            raise LabError(f"Trace: {path}: the times must be numbers")
        return cls(tuple(float(v) for v in values))

    @property
    def rate_per_s(self) -> float:
        span = self.times_s[-1] - self.times_s[0]
        return (len(self.times_s) - 1) / span if span > 0 else math.inf

    def times(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if n > len(self.times_s):
            raise LabError(f"Trace: {n} tasks asked for, the trace has {len(self.times_s)}")
        return np.asarray(self.times_s[:n], dtype=float)


# ---------------------------------------------------------------------------
# Service-time distributions: .sample(n, rng), .mean_s, .second_moment (s^2)


class Service(Protocol):
    """A service-time distribution (seconds)."""

    @property
    def mean_s(self) -> float: ...

    @property
    def second_moment(self) -> float: ...

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential service times of mean ``mean_s`` (the M in M/M/c)."""

    mean_s: float

    def __post_init__(self) -> None:
        _number("Exponential", "mean_s", self.mean_s)

    @property
    def second_moment(self) -> float:
        return 2.0 * self.mean_s**2

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.exponential(self.mean_s, n)


@dataclass(frozen=True, slots=True)
class Deterministic:
    """Every task takes exactly ``value_s`` (the D in M/D/1)."""

    value_s: float

    def __post_init__(self) -> None:
        _number("Deterministic", "value_s", self.value_s)

    @property
    def mean_s(self) -> float:
        return self.value_s

    @property
    def second_moment(self) -> float:
        return self.value_s**2

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, float(self.value_s))


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal service times with mean ``mean_s``; ``sigma`` is the standard deviation of
    the logarithm (the shape: 0 is deterministic, 1 and more is heavy-tailed)."""

    mean_s: float
    sigma: float

    def __post_init__(self) -> None:
        _number("LogNormal", "mean_s", self.mean_s)
        _number("LogNormal", "sigma", self.sigma, strict=False)

    @property
    def second_moment(self) -> float:
        return self.mean_s**2 * math.exp(self.sigma**2)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.lognormal(math.log(self.mean_s) - self.sigma**2 / 2, self.sigma, n)


@dataclass(frozen=True, slots=True)
class Histogram:
    """A measured distribution: ``counts[i]`` times fell in ``[edges_s[i], edges_s[i+1])``;
    samples are uniform within the bin drawn."""

    edges_s: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        edges = tuple(_number("Histogram", "an edge", e, strict=False) for e in self.edges_s)
        counts = tuple(_number("Histogram", "a count", c, strict=False) for c in self.counts)
        if len(edges) < 2 or len(counts) != len(edges) - 1:
            raise LabError(f"Histogram: needs n + 1 edges for n counts, got {len(edges)} and {len(counts)}")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise LabError("Histogram: edges must be strictly increasing")
        if sum(counts) <= 0:
            raise LabError("Histogram: the counts add up to 0")
        object.__setattr__(self, "edges_s", edges)
        object.__setattr__(self, "counts", counts)

    @classmethod
    def from_samples(cls, values_s: Sequence[float] | np.ndarray, bins: int = 50) -> Histogram:
        """The histogram of measured durations (``bins`` equal bins over their range)."""
        counts, edges = np.histogram(np.asarray(values_s, dtype=float), bins=bins)
        return cls(tuple(float(e) for e in edges), tuple(float(c) for c in counts))

    def _p(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        edges = np.asarray(self.edges_s)
        p = np.asarray(self.counts) / sum(self.counts)
        return p, edges[:-1], edges[1:]

    @property
    def mean_s(self) -> float:
        p, a, b = self._p()
        return float(np.sum(p * (a + b) / 2))

    @property
    def second_moment(self) -> float:
        p, a, b = self._p()
        return float(np.sum(p * (a * a + a * b + b * b) / 3))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        p, a, b = self._p()
        which = rng.choice(len(p), size=n, p=p)
        out: np.ndarray = a[which] + rng.random(n) * (b[which] - a[which])
        return out
