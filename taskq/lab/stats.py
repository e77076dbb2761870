"""Summaries of a lab frame (simulated or measured alike): :func:`summarize` gives, per
group and priority, throughput, mean and P50/P95/P99 wait and sojourn, Jain's fairness
index across priorities and utilisation, each a mean over the repeats with a Student-t
confidence interval.

Definitions (per repeat; a task's figures come from its rows of the frame):

* **wait**: the first attempt's ``wait_s`` (claim - arrival): the queueing delay that
  M/M/c and Cobham's formula predict.
* **sojourn**: the task's last attempt's ``sojourn_s`` (end - arrival): end to end,
  retries included.
* **percentiles**: nearest rank, taskq's one definition (``numpy.percentile(...,
  method="inverted_cdf")``, docs/ARCHITECTURE.md "Telemetry").
* **throughput**: tasks that ended (succeeded or dead) per second of the repeat's span,
  first arrival to last end.
* **utilisation**: the attempts' busy time (start to end) over slots x span; the slots are
  workers x concurrency of the row's config as ``df.attrs["configs"]`` describes it (NaN
  when the attrs do not name it).
* **fairness**: Jain's index ``(sum x)^2 / (n sum x^2)`` over the priorities present, with
  x the mean sojourn of each priority: 1 when every priority takes as long end to end,
  towards 1/n as one class bears all the waiting (R. Jain, D. Chiu, W. Hawe, "A
  quantitative measure of fairness...", DEC-TR-301, 1984).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from taskq.lab.model import LabError, check_frame

#: The metrics of one priority (and of all tasks, priority <NA>).
PER_PRIORITY = (
    *(f"{kind}_{stat}_s" for kind in ("wait", "sojourn") for stat in ("mean", "p50", "p95", "p99")),
    "tasks",
)
#: The metrics of a whole run only.
PER_RUN = ("throughput_per_s", "utilisation", "fairness")
SUMMARY_COLUMNS = ("priority", "metric", "mean", "ci_low", "ci_high", "repeats")


def nearest_rank(values: np.ndarray, q: float) -> float:
    """The q-quantile (0 < q <= 1) by nearest rank: the value at rank ceil(q n) sorted."""
    return float(np.percentile(values, q * 100, method="inverted_cdf")) if len(values) else math.nan


def jain_index(values: Sequence[float] | np.ndarray) -> float:
    """Jain's fairness index of non-negative values: 1 when all equal, 1/n at worst."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0 or not np.all(x >= 0) or not np.any(x > 0):
        return math.nan
    return float(x.sum() ** 2 / (len(x) * (x * x).sum()))


def t_interval(values: Sequence[float] | np.ndarray, ci: float = 0.95) -> tuple[float, float, float]:
    """Mean and the Student-t confidence interval (two-sided, level ``ci``) of the mean of
    independent repeats; the bounds are NaN with fewer than two values."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(scipy_stats.t.ppf((1 + ci) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def _slots(df: pd.DataFrame) -> dict[str, int]:
    out = {}
    for described in df.attrs.get("configs") or []:
        try:
            out[str(described["name"])] = int(described["workers"]) * int(described["concurrency"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _task_figures(run: pd.DataFrame) -> pd.DataFrame:
    """One row per task of one run: priority, wait (first attempt), sojourn and outcome
    (last attempt)."""
    ordered = run.sort_values(["task", "attempt"])
    first = ordered.groupby("task", sort=True).first()
    last = ordered.groupby("task", sort=True).last()
    return pd.DataFrame({"priority": first["priority"], "wait_s": first["wait_s"], "sojourn_s": last["sojourn_s"]})


def _priority_figures(tasks: pd.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {"tasks": float(len(tasks))}
    for kind in ("wait", "sojourn"):
        values = tasks[f"{kind}_s"].to_numpy()
        out[f"{kind}_mean_s"] = float(values.mean()) if len(values) else math.nan
        for q in (50, 95, 99):
            out[f"{kind}_p{q}_s"] = nearest_rank(values, q / 100)
    return out


def _run_figures(run: pd.DataFrame, slots: int | None) -> dict[Any, dict[str, float]]:
    """priority (or None for all) -> metric -> value, for one repeat of one group."""
    tasks = _task_figures(run)
    out: dict[Any, dict[str, float]] = {None: _priority_figures(tasks)}
    for priority, part in tasks.groupby("priority", sort=True):
        out[int(priority)] = _priority_figures(part)
    span = float(run["end_s"].max() - run["enqueue_s"].min())
    busy = float((run["end_s"] - run["start_s"]).sum())
    out[None]["throughput_per_s"] = len(tasks) / span if span > 0 else math.nan
    out[None]["utilisation"] = busy / (slots * span) if slots and span > 0 else math.nan
    means = [out[p]["sojourn_mean_s"] for p in out if p is not None]
    out[None]["fairness"] = jain_index(means)
    return out


def summarize(df: pd.DataFrame, by: Sequence[str] = ("config",), ci: float = 0.95) -> pd.DataFrame:
    """A tidy summary of a lab frame: one row per group of ``by`` (columns of ``df``; the
    repeats are the replication, so not ``repeat``), priority (``<NA>`` for all tasks and the
    run-wide metrics) and metric (PER_PRIORITY, PER_RUN), with the mean over the repeats,
    its ``ci`` t-interval and the number of repeats. See the module docstring for the
    definitions."""
    check_frame(df, tol_s=math.inf)
    by = [by] if isinstance(by, str) else list(by)
    unknown = [c for c in by if c not in df.columns or c == "repeat"]
    if unknown or not by:
        raise LabError(f"summarize: by must name columns of the frame other than repeat, got {by}")
    if not 0 < ci < 1:
        raise LabError(f"summarize: ci must be in (0, 1), got {ci}")
    slots = _slots(df)
    records = []
    for key, group in df.groupby(by, sort=True):
        keys = key if isinstance(key, tuple) else (key,)
        named = dict(zip(by, keys, strict=True))
        per_repeat = [
            _run_figures(run, slots.get(str(named["config"])) if "config" in named else None)
            for _, run in group.groupby("repeat", sort=True)
        ]
        found = sorted({p for figures in per_repeat for p in figures if p is not None})
        for priority in [None, *found]:
            metrics = PER_PRIORITY + (PER_RUN if priority is None else ())
            for metric in metrics:
                values = [f[priority][metric] for f in per_repeat if priority in f]
                mean, low, high = t_interval(values, ci)
                records.append(
                    {**named, "priority": priority, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high}
                    | {"repeats": len(values)}
                )
    out = pd.DataFrame.from_records(records, columns=[*by, *SUMMARY_COLUMNS])
    out["priority"] = out["priority"].astype("Int64")
    out.attrs.update(df.attrs)
    return out
