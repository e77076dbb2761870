"""Plots of lab frames (matplotlib): each function draws on the Axes it is given (or on a
new Figure of its own, without pyplot) and returns the Axes; nothing is shown.

* :func:`wait_cdf`: the wait-time distribution per priority, one step line each;
* :func:`p99_vs_utilisation`: a quantile of the wait against the utilisation, one line per
  frame (measured, simulated) and a theory curve when given one;
* :func:`measured_vs_simulated`: per priority, measured and simulated waits of each
  configuration on one axis, with theory values beside them when given.

Which rows a metric uses (:func:`metric_rows`): ``wait_s`` is a first attempt's wait in the
queue (the M/M/c queueing delay); ``sojourn_s`` is end to end, read on each task's last
attempt. Percentiles are nearest rank, taskq's one definition
(``numpy.quantile(..., method="inverted_cdf")``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from taskq.lab.model import LabError, check_frame

METRICS = ("wait_s", "sojourn_s")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.4, 4.0)) -> Axes:
    return ax if ax is not None else Figure(figsize=figsize, layout="constrained").add_subplot()


def metric_rows(df: pd.DataFrame, metric: str = "wait_s") -> pd.DataFrame:
    """The rows ``metric`` is read on: first attempts for ``wait_s``, each task's last
    attempt for ``sojourn_s``."""
    if metric not in METRICS:
        raise LabError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "wait_s":
        return df[df["attempt"] == 1]
    last = df.groupby(["config", "repeat", "task"])["attempt"].transform("max")
    return df[df["attempt"] == last]


def quantile(values: Iterable[float] | pd.Series, q: float) -> float:
    """The nearest-rank ``q`` quantile (taskq's definition); NaN when there are no values."""
    data = np.asarray(list(values) if not isinstance(values, pd.Series) else values, dtype=float)
    return float(np.quantile(data, q, method="inverted_cdf")) if data.size else float("nan")


def statistic(values: pd.Series, stat: float | str) -> float:
    """``stat`` of ``values``: "mean", or a quantile in (0, 1] such as 0.99."""
    if stat == "mean":
        return float(values.mean())
    if isinstance(stat, (int, float)) and not isinstance(stat, bool) and 0 < stat <= 1:
        return quantile(values, float(stat))
    raise LabError(f"stat must be 'mean' or a quantile in (0, 1], got {stat!r}")


def _slots(df: pd.DataFrame) -> dict[str, int]:
    return {c["name"]: int(c["workers"]) * int(c["concurrency"]) for c in df.attrs.get("configs", [])}


def utilisation(df: pd.DataFrame) -> pd.Series:
    """The utilisation each configuration's run really had (mean over repeats): arrivals per
    second (from the enqueue times) times mean time an attempt held a slot (claim to end) times
    attempts per task / slots. Feeding the measured rates in, as notebook 8 does, puts each
    point where the system really was."""
    slots = _slots(check_frame(df))
    out = {}
    for config, part in df.groupby("config", sort=False):
        rhos = []
        for _, run in part.groupby("repeat"):
            first = run[run["attempt"] == 1]["enqueue_s"]
            span = float(first.max() - first.min())
            if span <= 0 or len(first) < 2:
                continue
            rate = (len(first) - 1) / span
            busy = float((run["end_s"] - run["claim_s"]).sum()) / len(first)
            rhos.append(rate * busy / slots.get(str(config), 1))
        out[config] = float(np.mean(rhos)) if rhos else float("nan")
    return pd.Series(out, name="utilisation")


def wait_cdf(df: pd.DataFrame, *, config: str | None = None, metric: str = "wait_s", ax: Axes | None = None) -> Axes:
    """The empirical CDF of ``metric`` (in ms), one step line per priority, most urgent first,
    for ``config`` (default: the frame's only configuration)."""
    check_frame(df)
    configs = list(dict.fromkeys(df["config"]))
    if config is None:
        if len(configs) != 1:
            raise LabError(f"wait_cdf: the frame has configurations {configs}: name one")
        config = configs[0]
    elif config not in configs:
        raise LabError(f"wait_cdf: no configuration {config!r} in the frame ({configs})")
    rows = metric_rows(df[df["config"] == config], metric)
    ax = _axes(ax)
    for priority, part in sorted(rows.groupby("priority"), key=lambda kv: -int(kv[0])):
        values = np.sort(part[metric].to_numpy() * 1000)
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=f"priority {priority}")
    ax.set_xlabel(f"{metric.removesuffix('_s')} (ms)")
    ax.set_ylabel("fraction of tasks")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{metric.removesuffix('_s').capitalize()} CDF per priority: {config} ({df.attrs.get('source')})")
    ax.legend(loc="lower right")
    return ax


def p99_vs_utilisation(
    frames: pd.DataFrame | Sequence[pd.DataFrame],
    *,
    q: float = 0.99,
    metric: str = "wait_s",
    priority: int | None = None,
    theory: Callable[[float], float] | None = None,
    theory_label: str = "theory",
    ax: Axes | None = None,
) -> Axes:
    """The ``q`` quantile of ``metric`` (ms) of each configuration against its utilisation
    (:func:`utilisation`), one line per frame labelled by its source (measured, simulated);
    ``priority`` keeps one priority's tasks. ``theory`` maps a utilisation to seconds (e.g. an
    M/M/c quantile) and is drawn as a line over the range of the points."""
    ax = _axes(ax)
    rhos_seen: list[float] = []
    for df in [frames] if isinstance(frames, pd.DataFrame) else frames:
        rho = utilisation(df)
        rows = metric_rows(df, metric)
        if priority is not None:
            rows = rows[rows["priority"] == priority]
        points = sorted(
            (float(rho[c]), 1000 * quantile(part[metric], q)) for c, part in rows.groupby("config", sort=False)
        )
        rhos_seen += [x for x, _ in points]
        marker = "o" if df.attrs.get("source") == "measured" else "s"
        ax.plot([x for x, _ in points], [y for _, y in points], marker=marker, label=str(df.attrs.get("source")))
    if theory is not None and rhos_seen:
        grid = np.linspace(min(rhos_seen) * 0.9, min(max(rhos_seen) * 1.05, 0.99), 100)
        ax.plot(grid, [1000 * theory(float(r)) for r in grid], color="black", linestyle=":", label=theory_label)
    name = f"P{round(q * 100, 1):g}" if q < 1 else "max"
    ax.set_xlabel(r"utilisation $\rho$")
    ax.set_ylabel(f"{name} {metric.removesuffix('_s')} (ms)")
    ax.set_title(f"{name} {metric.removesuffix('_s')} against utilisation")
    ax.legend()
    return ax


def measured_vs_simulated(
    measured: pd.DataFrame,
    simulated: pd.DataFrame,
    *,
    stat: float | str = "mean",
    metric: str = "wait_s",
    theory: Mapping[str, Mapping[int, float]] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Per priority (x), ``stat`` ("mean" or a quantile) of ``metric`` (ms) for each
    configuration the two frames share: measured (solid, circles), simulated (dashed,
    squares) and, from ``theory`` ({config: {priority: seconds}}, e.g. Cobham's per-class
    mean waits), theory (dotted, crosses); one colour per configuration."""
    check_frame(measured)
    check_frame(simulated)
    shared = [c for c in dict.fromkeys(measured["config"]) if c in set(simulated["config"])]
    if not shared:
        raise LabError("measured_vs_simulated: the frames share no configuration")
    ax = _axes(ax)
    colours = [f"C{i % 10}" for i in range(len(shared))]
    for config, colour in zip(shared, colours, strict=True):
        for df, style, marker, source in ((measured, "-", "o", "measured"), (simulated, "--", "s", "simulated")):
            rows = metric_rows(df[df["config"] == config], metric)
            by = sorted(rows.groupby("priority"), key=lambda kv: int(kv[0]))
            xs = [int(p) for p, _ in by]
            ys = [1000 * statistic(part[metric], stat) for _, part in by]
            ax.plot(xs, ys, linestyle=style, marker=marker, color=colour, label=f"{config}: {source}")
        if theory is not None and config in theory:
            xs = sorted(theory[config])
            ax.plot(
                xs,
                [1000 * theory[config][p] for p in xs],
                linestyle=":",
                marker="x",
                color=colour,
                label=f"{config}: theory",
            )
    name = "mean" if stat == "mean" else f"P{round(float(stat) * 100, 1):g}"
    ax.set_xlabel("priority (10 most urgent)")
    ax.set_ylabel(f"{name} {metric.removesuffix('_s')} (ms)")
    ax.set_title(f"{name.capitalize()} {metric.removesuffix('_s')} per priority: measured and simulated")
    ax.legend(fontsize="small")
    return ax
