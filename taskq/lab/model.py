"""The lab's model: what arrives (:class:`Workload`), how taskq is set up to serve it
(:class:`Config`, :func:`grid`), and the one frame shape both a real run and the simulator
return (:data:`FRAME_COLUMNS`, :func:`make_frame`, :func:`check_frame`).

Everything here is declarative: frozen dataclasses, validated on construction (bad input
raises :class:`LabError`, an :class:`~taskq.InvalidOption`, or :class:`~taskq.InvalidPriority` /
:class:`~taskq.InvalidQueueName`), with no I/O. Randomness comes from numpy generators seeded
from ``Workload.seed`` and the repeat number, so a workload's plan for a repeat is the same
on every machine and for both sides: :meth:`Workload.tasks` is what the real run enqueues
and what the simulator feeds its model.

Times are seconds (floats), relative to the start of the run.
"""

from __future__ import annotations

import itertools
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

import taskq
from taskq import Backoff, InvalidPriority, check_queue_name
from taskq.lab.distributions import (
    Arrivals,
    Bursts,
    Deterministic,
    Exponential,
    Fixed,
    Histogram,
    LabError,
    LogNormal,
    Poisson,
    Service,
    Trace,
    _integer,
    _number,
)

__all__ = [
    "ATTRS",
    "FRAME_COLUMNS",
    "OUTCOMES",
    "PLAN_COLUMNS",
    "SOURCES",
    "Arrivals",
    "Bursts",
    "Config",
    "Deterministic",
    "Exponential",
    "Fixed",
    "Histogram",
    "LabError",
    "LogNormal",
    "Poisson",
    "Service",
    "Trace",
    "Workload",
    "check_configs",
    "check_frame",
    "describe",
    "frame_attrs",
    "grid",
    "make_frame",
]


def _shares(owner: str, name: str, value: object) -> dict[Any, float]:
    """A mapping of key -> positive share, normalised to sum 1 (order kept)."""
    if not isinstance(value, Mapping) or not value:
        raise LabError(f"{owner}: {name} must be a non-empty mapping of key -> share, got {value!r}")
    raw = {k: _number(owner, f"{name}[{k!r}]", v) for k, v in value.items()}
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def describe(obj: object) -> dict[str, Any]:
    """A JSON-able description of a model object (its class and fields), for ``df.attrs``."""

    def plain(value: object) -> object:
        if isinstance(value, Backoff):
            return {"base_s": value.base_s, "cap_s": value.cap_s, "jitter": value.jitter, "min_s": value.min_s}
        if hasattr(value, "__dataclass_fields__"):
            return describe(value)
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    out: dict[str, Any] = {"kind": type(obj).__name__}
    out.update({f.name: plain(getattr(obj, f.name)) for f in fields(obj)})  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------------------
# The workload and its concrete plan

#: The columns of :meth:`Workload.tasks` (one row per task, in arrival order).
PLAN_COLUMNS = ("task", "arrival_s", "service_s", "priority", "queue", "fails")


@dataclass(frozen=True)
class Workload:
    """What arrives: ``n_tasks`` tasks at the instants of ``arrivals``, each taking a time
    drawn from ``service`` (every attempt of a task takes the same time), with a priority
    and a queue drawn from the shares in ``priorities`` (1..10 -> share) and ``queues``
    (name -> share). Each attempt fails with probability ``failure_p``, independently.
    ``seed`` fixes every draw (see :meth:`tasks`)."""

    arrivals: Arrivals
    service: Service
    n_tasks: int
    priorities: Mapping[int, float] = field(default_factory=lambda: {5: 1.0})
    queues: Mapping[str, float] = field(default_factory=lambda: {"lab": 1.0})
    failure_p: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, kinds in (
            ("arrivals", self.arrivals, (Poisson, Fixed, Bursts, Trace)),
            ("service", self.service, (Exponential, Deterministic, LogNormal, Histogram)),
        ):
            if not isinstance(value, kinds):
                raise LabError(f"Workload: {name} must be one of {[k.__name__ for k in kinds]}, got {value!r}")
        _integer("Workload", "n_tasks", self.n_tasks, minimum=1)
        if isinstance(self.arrivals, Trace) and self.n_tasks > len(self.arrivals.times_s):
            raise LabError(f"Workload: n_tasks={self.n_tasks} but the trace has {len(self.arrivals.times_s)} times")
        priorities = _shares("Workload", "priorities", self.priorities)
        for p in priorities:
            if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 10:
                raise InvalidPriority(f"Workload: priorities are integers 1..10 (10 most urgent), got {p!r}")
        queues = _shares("Workload", "queues", self.queues)
        for q in queues:
            check_queue_name(q)
        p = _number("Workload", "failure_p", self.failure_p, strict=False)
        if p >= 1:
            raise LabError(f"Workload: failure_p must be in [0, 1), got {p}")
        _integer("Workload", "seed", self.seed, minimum=0)
        object.__setattr__(self, "priorities", priorities)
        object.__setattr__(self, "queues", queues)

    @property
    def rate_per_s(self) -> float:
        """The mean arrival rate, tasks per second."""
        return self.arrivals.rate_per_s

    @property
    def offered_load(self) -> float:
        """Arrival rate x mean service time (Erlangs): the busy servers needed on average,
        first attempts only (retries add ``failure_p / (1 - failure_p)`` of it at most)."""
        return self.rate_per_s * self.service.mean_s

    def utilisation(self, config: Config) -> float:
        """The offered load per slot (rho) under ``config``'s workers x concurrency."""
        return self.offered_load / (config.workers * config.concurrency)

    def tasks(self, repeat: int = 0) -> pd.DataFrame:
        """The concrete plan of repeat ``repeat``: one row per task, in arrival order, with
        the columns of :data:`PLAN_COLUMNS`. ``fails`` is how many attempts fail before one
        succeeds (attempt k fails when k <= fails; with too few retries the task ends dead).
        Each column has its own random stream, so changing one parameter (say failure_p)
        leaves the others' draws as they were."""
        _integer("Workload.tasks", "repeat", repeat, minimum=0)

        def rng(stream: int) -> np.random.Generator:
            return np.random.default_rng([self.seed, repeat, stream])

        n = self.n_tasks
        prio_keys, prio_p = list(self.priorities), list(self.priorities.values())
        queue_keys, queue_p = list(self.queues), list(self.queues.values())
        fails = rng(5).geometric(1.0 - self.failure_p, n) - 1 if self.failure_p > 0 else np.zeros(n, dtype=np.int64)
        return pd.DataFrame(
            {
                "task": np.arange(n, dtype=np.int64),
                "arrival_s": np.asarray(self.arrivals.times(n, rng(1)), dtype=float),
                "service_s": np.asarray(self.service.sample(n, rng(2)), dtype=float),
                "priority": np.asarray(prio_keys, dtype=np.int64)[rng(3).choice(len(prio_keys), n, p=prio_p)],
                "queue": np.asarray(queue_keys, dtype=object)[rng(4).choice(len(queue_keys), n, p=queue_p)],
                "fails": fails.astype(np.int64),
            }
        )


# ---------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class Config:
    """How taskq serves the workload: ``workers`` worker processes of ``concurrency`` slots
    each; ``aging_s`` the queues' aging window (None: strict priority); ``queue_weights``
    (queue -> integer weight) a weighted claim order (None: the workload's queue order,
    first queue first); ``batch`` the most tasks one claim takes from a queue (None: as
    many as the worker has free slots, taskq's own rule, up to 1000); ``max_retries`` and
    ``backoff`` the retry policy; ``lease_s`` the lease."""

    name: str
    workers: int = 1
    concurrency: int = 1
    aging_s: float | None = None
    queue_weights: Mapping[str, int] | None = None
    batch: int | None = None
    max_retries: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    lease_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise LabError(f"Config: name must be a non-empty string, got {self.name!r}")
        _integer("Config", "workers", self.workers, minimum=1)
        _integer("Config", "concurrency", self.concurrency, minimum=1)
        if self.aging_s is not None:
            _number("Config", "aging_s", self.aging_s)
        if self.queue_weights is not None:
            if not isinstance(self.queue_weights, Mapping) or not self.queue_weights:
                raise LabError(f"Config: queue_weights must be a non-empty mapping, got {self.queue_weights!r}")
            for q, w in self.queue_weights.items():
                check_queue_name(q)
                _integer("Config", f"queue_weights[{q!r}]", w, minimum=1)
            object.__setattr__(self, "queue_weights", dict(self.queue_weights))
        if self.batch is not None and _integer("Config", "batch", self.batch, minimum=1) > 1000:
            raise LabError(f"Config: batch is at most 1000 (taskq's largest claim), got {self.batch}")
        _integer("Config", "max_retries", self.max_retries, minimum=0)
        if not isinstance(self.backoff, Backoff):
            raise LabError(f"Config: backoff must be a taskq.Backoff, got {self.backoff!r}")
        _number("Config", "lease_s", self.lease_s)

    @property
    def slots(self) -> int:
        """Tasks that can run at once: workers x concurrency."""
        return self.workers * self.concurrency


def grid(base: Config | None = None, **lists: Sequence[Any]) -> list[Config]:
    """Every combination of the values given (the cartesian product, in order), each a
    :class:`Config` like ``base`` with those fields, named ``field=value,…``:
    ``grid(workers=[1, 2], aging_s=[None, 5.0])`` gives four configurations."""
    names = [f.name for f in fields(Config)]
    for key, values in lists.items():
        if key == "name" or key not in names:
            raise LabError(f"grid: {key!r} is not a Config field to vary ({', '.join(names[1:])})")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise LabError(f"grid: {key} must be a non-empty list of values, got {values!r}")
    start = base if base is not None else Config(name="base")
    out = []
    for combo in itertools.product(*lists.values()):
        changes = dict(zip(lists, combo, strict=True))
        name = ",".join(f"{k}={v}" for k, v in changes.items()) or start.name
        out.append(Config(**{**{n: getattr(start, n) for n in names}, **changes, "name": name}))
    return out


def check_configs(configs: Config | Iterable[Config]) -> list[Config]:
    """``configs`` as a list of Config with unique names (a single one is a list of one)."""
    out = [configs] if isinstance(configs, Config) else list(configs)
    if not out or not all(isinstance(c, Config) for c in out):
        raise LabError(f"configs must be one Config or a non-empty list of them, got {configs!r}")
    seen = [c.name for c in out]
    if len(set(seen)) != len(seen):
        raise LabError(f"config names must be unique: {seen}")
    return out


# ---------------------------------------------------------------------------
# The frame both sides return

#: One row per attempt, sorted by config, repeat, task, attempt. Times are s from the
#: run's start. ``enqueue_s``: the task's first enqueue (its arrival); ``ready_s``: when this
#: attempt could be claimed (the arrival for attempt 1, a retry's due time, a requeue);
#: ``claim_s``: when a worker claimed it; ``start_s``: when its function started;
#: ``end_s``: when the attempt ended. ``wait_s = claim_s - ready_s`` (what taskq's wait
#: histogram measures; for attempt 1 the M/M/c queueing delay); ``sojourn_s = end_s -
#: enqueue_s`` (end to end, on a task's last attempt). ``outcome``: one of OUTCOMES.
FRAME_COLUMNS: Mapping[str, str] = {
    "config": "object",
    "repeat": "int64",
    "task": "int64",
    "queue": "object",
    "priority": "int64",
    "attempt": "int64",
    "worker": "object",
    "enqueue_s": "float64",
    "ready_s": "float64",
    "claim_s": "float64",
    "start_s": "float64",
    "end_s": "float64",
    "outcome": "object",
    "wait_s": "float64",
    "sojourn_s": "float64",
}
#: ``failed``: the attempt failed and a retry was scheduled; ``dead``: it failed with no
#: retry left; ``expired``: its lease expired (the worker died) and the task was requeued.
OUTCOMES = ("succeeded", "failed", "dead", "expired")
SOURCES = ("simulated", "measured")
#: Keys every frame's ``attrs`` holds.
ATTRS = ("source", "seed", "workload", "configs", "repeats", "machine", "versions")


def frame_attrs(source: str, workload: Workload, configs: Sequence[Config], repeats: int) -> dict[str, Any]:
    """The metadata a frame carries (JSON-able, so it survives Parquet)."""
    if source not in SOURCES:
        raise LabError(f"source must be one of {SOURCES}, got {source!r}")
    versions = {"taskq": taskq.__version__, "python": platform.python_version()}
    versions.update({m: __import__(m).__version__ for m in ("numpy", "pandas", "simpy", "scipy")})
    machine = {"node": platform.node(), "system": platform.platform(), "cpus": os.cpu_count()}
    return {
        "source": source,
        "seed": workload.seed,
        "workload": describe(workload),
        "configs": [describe(c) for c in configs],
        "repeats": repeats,
        "machine": machine,
        "versions": versions,
    }


def make_frame(
    rows: Iterable[Mapping[str, Any]] | Mapping[str, Sequence[Any]], attrs: Mapping[str, Any]
) -> pd.DataFrame:
    """A frame of the lab's shape from row mappings, or from a mapping of column -> values
    (with the columns of FRAME_COLUMNS but ``wait_s`` and ``sojourn_s``, which are
    derived), sorted, with ``attrs``; checked by :func:`check_frame`."""
    base = [c for c in FRAME_COLUMNS if c not in ("wait_s", "sojourn_s")]
    df = pd.DataFrame(rows if isinstance(rows, Mapping) else list(rows), columns=base)
    df["wait_s"] = df["claim_s"] - df["ready_s"]
    df["sojourn_s"] = df["end_s"] - df["enqueue_s"]
    df = df.astype(dict(FRAME_COLUMNS)).sort_values(["config", "repeat", "task", "attempt"], ignore_index=True)
    df.attrs.update(attrs)
    return check_frame(df)


def check_frame(df: object, tol_s: float = 1e-9) -> pd.DataFrame:
    """Return ``df`` if it has the lab's shape, else raise :class:`LabError` saying what is
    wrong: the columns of FRAME_COLUMNS with their types, no missing values, known
    outcomes, priorities 1..10, attempts from 1, times in order (enqueue ≤ ready ≤ claim ≤
    start ≤ end, each within ``tol_s``: measured times come from different clocks), the
    derived columns consistent, and the ``attrs`` of ATTRS."""
    if not isinstance(df, pd.DataFrame):
        raise LabError(f"not a DataFrame: {type(df).__name__}")
    missing = [c for c in FRAME_COLUMNS if c not in df.columns]
    if missing:
        raise LabError(f"frame lacks columns {missing}")
    for column, dtype in FRAME_COLUMNS.items():
        kind = df[column].dtype
        ok = pd.api.types.is_integer_dtype(kind) if dtype == "int64" else None
        ok = pd.api.types.is_float_dtype(kind) if dtype == "float64" else ok
        ok = ok if ok is not None else not pd.api.types.is_numeric_dtype(kind)
        if not ok:
            raise LabError(f"frame column {column} has type {kind}, expected {dtype}")
    if df[list(FRAME_COLUMNS)].isna().to_numpy().any():
        raise LabError(f"frame has missing values in {[c for c in FRAME_COLUMNS if df[c].isna().any()]}")
    bad = sorted(set(df["outcome"]) - set(OUTCOMES))
    if bad:
        raise LabError(f"frame has unknown outcomes {bad} (known: {OUTCOMES})")
    if not df["priority"].between(1, 10).all() or (df["attempt"] < 1).any():
        raise LabError("frame has a priority outside 1..10 or an attempt below 1")
    order = ("enqueue_s", "ready_s", "claim_s", "start_s", "end_s")
    for a, b in itertools.pairwise(order):
        if (df[b] < df[a] - tol_s).any():
            raise LabError(f"frame has a row with {b} before {a}")
    if not np.allclose(df["wait_s"], df["claim_s"] - df["ready_s"], rtol=0, atol=1e-9):
        raise LabError("frame's wait_s is not claim_s - ready_s")
    if not np.allclose(df["sojourn_s"], df["end_s"] - df["enqueue_s"], rtol=0, atol=1e-9):
        raise LabError("frame's sojourn_s is not end_s - enqueue_s")
    lacking = [k for k in ATTRS if k not in df.attrs]
    if lacking:
        raise LabError(f"frame attrs lack {lacking}")
    if df.attrs["source"] not in SOURCES:
        raise LabError(f"frame attrs source must be one of {SOURCES}, got {df.attrs['source']!r}")
    return df
