"""Tables, plots and sanity checks over a results file, for the benchmark notebooks.

``rows_frame`` turns a results document (what :mod:`taskq_bench.run` writes) into a pandas
DataFrame; the ``plot_*`` functions draw one figure each with matplotlib; ``problems``
lists what is structurally wrong with a document (missing rows, percentiles out of order,
a CDF that does not rise to one), so a notebook can assert it is empty. Needs the
``bench`` extra (pandas, matplotlib).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import matplotlib.pyplot as plt
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"taskq_bench.plots needs pandas and matplotlib: pip install 'taskq[bench]' ({exc})") from exc

QUANTILES = ("p50", "p90", "p99", "p999", "max")
NOT_INSTALLED = "not installed"


def load(path: str | Path) -> dict[str, Any]:
    """A results document from its JSON file."""
    document: dict[str, Any] = json.loads(Path(path).read_text())
    return document


def rows_frame(document: dict[str, Any]) -> pd.DataFrame:
    """Every row of the document, one per line (``value`` is NaN where it could not be measured)."""
    frame = pd.DataFrame(document["rows"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    return frame


def system_status(document: dict[str, Any]) -> pd.DataFrame:
    """Per system asked for: ``ran``, ``not installed`` (no virtualenv) or ``failed: why``, and its version."""
    lines = []
    for system in document["settings"]["systems"]:
        rounds = document.get("systems", {}).get(system, {}).get("rounds", [])
        errors = [info["error"] for info in rounds if "error" in info]
        ok = [info for info in rounds if "error" not in info]
        if ok:
            status = "ran"
        elif errors and errors[0].startswith("no Python at"):
            status = NOT_INSTALLED
        else:
            status = "failed: " + (errors[0][:120] if errors else "no result")
        lines.append({"system": system, "status": status, "version": ok[0]["version"] if ok else ""})
    return pd.DataFrame(lines).set_index("system")


def throughput(document: dict[str, Any]) -> pd.DataFrame:
    """tasks/s per system (rows) for enqueue single/bulk and drain 1 process/best 2-core (columns)."""
    frame = rows_frame(document)
    wanted = {
        ("enqueue", "single, 1 producer"): "enqueue, single",
        ("enqueue", "bulk, 1 producer"): "enqueue, bulk",
        ("drain", "1 process"): "drain, 1 process",
        ("drain", "best 2-core"): "drain, best 2-core",
    }
    frame = frame[frame["metric"] == "tasks_per_s"]
    frame = frame[[(e, c) in wanted for e, c in zip(frame["experiment"], frame["case"], strict=True)]]
    table = frame.assign(column=[wanted[(e, c)] for e, c in zip(frame["experiment"], frame["case"], strict=True)])
    wide = table.pivot_table(index="system", columns="column", values="value", aggfunc="first", dropna=False)
    systems = list(document["settings"]["systems"])
    return wide.reindex(index=systems, columns=[c for c in wanted.values() if c in wide.columns])


def latency(document: dict[str, Any], measure: str = "to_start") -> pd.DataFrame:
    """Latency percentiles (ms) per system and offered rate: columns system, rate_per_s, p50 … max."""
    frame = rows_frame(document)
    frame = frame[(frame["experiment"] == "latency") & frame["metric"].str.startswith(measure + "_")]
    frame = frame[frame["metric"].str.removeprefix(measure + "_").isin(QUANTILES)]
    frame = frame.assign(
        rate_per_s=frame["case"].str.removesuffix("/s").astype(float),
        quantile=frame["metric"].str.removeprefix(measure + "_"),
    )
    wide = frame.pivot_table(index=["system", "rate_per_s"], columns="quantile", values="value", aggfunc="first",
                             dropna=False)  # fmt: skip
    return wide.reindex(columns=list(QUANTILES)).reset_index()


def latency_rates(document: dict[str, Any]) -> list[float]:
    """The offered rates (tasks/s) the document has latency runs for, lowest first."""
    return sorted({run["rate_per_s"] for rounds in document.get("details", {}).values()
                   for run in (rounds[0] if rounds else {}).get("latency", [])})  # fmt: skip


def cdfs(document: dict[str, Any], rate_per_s: float) -> dict[str, list[tuple[float, float]]]:
    """Per system, the enqueue→start CDF ((ms, fraction) points) at one offered rate (first round)."""
    found = {}
    for system, rounds in document.get("details", {}).items():
        for run in (rounds[0] if rounds else {}).get("latency", []):
            if run["rate_per_s"] == rate_per_s and run["to_start_cdf"]:
                found[system] = [(float(ms), float(f)) for ms, f in run["to_start_cdf"]]
    return found


def scaling(document: dict[str, Any]) -> pd.DataFrame:
    """Scaling rows: columns system, axis (processes | concurrency), x, tasks_per_s."""
    frame = rows_frame(document)
    frame = frame[frame["experiment"] == "scaling"]
    axis_x = frame["case"].str.split("=", n=1, expand=True) if len(frame) else pd.DataFrame(columns=[0, 1])
    return pd.DataFrame({
        "system": frame["system"].to_numpy(),
        "axis": axis_x[0].to_numpy(),
        "x": pd.to_numeric(axis_x[1]).to_numpy(),
        "tasks_per_s": frame["value"].to_numpy(),
    })  # fmt: skip


# ---------------------------------------------------------------------------
# Plots


def plot_throughput(document: dict[str, Any], title: str = "") -> Figure:
    """Bars: enqueue and drain tasks/s per system; systems that did not run are labelled so."""
    table = throughput(document)
    status = system_status(document)["status"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, prefix in zip(axes, ("enqueue", "drain"), strict=True):
        columns = [c for c in table.columns if c.startswith(prefix)]
        part = table[columns].rename(columns=lambda c: c.split(", ", 1)[1])
        ax.set_title(f"{prefix} (tasks/s, log scale)")
        if part.empty or part.isna().all().all():  # a run of other experiments (--experiments)
            ax.text(0.5, 0.5, f"no {prefix} experiment in this run", ha="center", va="center",
                    transform=ax.transAxes, color="grey")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        part.plot.bar(ax=ax, rot=30, logy=True)
        ax.legend(title=None, fontsize=8)
        ax.set_xlabel("")
        for i, system in enumerate(part.index):
            if status.get(system, "ran") != "ran":
                ax.annotate(str(status[system])[:16], (i, 1), xycoords=("data", "axes fraction"), rotation=90,
                            ha="center", va="top", fontsize=8, color="grey")  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_cdfs(document: dict[str, Any], rate_per_s: float, ax: Axes | None = None) -> Axes:
    """Enqueue→start latency CDFs of every system at one offered rate (log x)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for system, points in cdfs(document, rate_per_s).items():
        ms, fraction = zip(*points, strict=True)
        ax.step(ms, fraction, where="post", label=system)
    ax.set_xscale("log")
    ax.set_xlabel("enqueue → start (ms)")
    ax.set_ylabel("fraction of tasks")
    ax.set_title(f"latency CDF at {rate_per_s:g} tasks/s offered")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_latency_vs_load(document: dict[str, Any], quantiles: Sequence[str] = ("p50", "p99")) -> Figure:
    """P50 and P99 enqueue→start vs offered load, one line per system (log-log). A missing
    point means the system did not finish every task in time at that load."""
    table = latency(document)
    fig, axes = plt.subplots(1, len(quantiles), figsize=(6 * len(quantiles), 4), squeeze=False)
    rates = sorted(table["rate_per_s"].unique())
    for ax, q in zip(axes[0], quantiles, strict=True):
        for system in document["settings"]["systems"]:
            part = table[table["system"] == system].sort_values("rate_per_s")
            if len(part):
                ax.plot(part["rate_per_s"], part[q], marker="o", label=system)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(rates, [f"{r:,.0f}" for r in rates])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("offered load (tasks/s)")
        ax.set_ylabel(f"{q.upper()} enqueue → start (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_scaling(table: pd.DataFrame, title: str = "") -> Figure:
    """Throughput vs processes and vs concurrency (columns system, axis, x, tasks_per_s)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, axis in zip(axes, ("processes", "concurrency"), strict=True):
        part = table[table["axis"] == axis]
        for system, line in part.groupby("system", sort=False):
            ax.plot(line["x"], line["tasks_per_s"], marker="o", label=system)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"worker {axis}" + (" per process" if axis == "concurrency" else ""))
        ax.set_ylabel("tasks/s")
        ax.grid(True, which="both", alpha=0.3)
        if len(part):
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Sanity


def problems(document: dict[str, Any]) -> list[str]:
    """What is structurally wrong with a results document (an empty list when nothing is):
    a system asked for without a row, a system that ran without drain or enqueue figures,
    non-positive throughput, latency percentiles out of order, a CDF that falls or, with
    every task done, does not reach one."""
    found = []
    frame = rows_frame(document)
    status = system_status(document)["status"]
    for system in document["settings"]["systems"]:
        mine = frame[frame["system"] == system]
        if mine.empty:
            found.append(f"{system}: no row at all (dropped)")
            continue
        if status[system] != "ran":
            if mine["note"].eq("").all():
                found.append(f"{system}: did not run and no row says why")
            continue
        rates = mine[(mine["metric"] == "tasks_per_s") & mine["value"].notna()]
        if (rates["value"] <= 0).any():
            found.append(f"{system}: throughput <= 0")
    for _, line in latency(document).iterrows():
        values = [line[q] for q in QUANTILES]
        known = [v for v in values if not (isinstance(v, float) and math.isnan(v))]
        # an unknown quantile lies beyond every known one: only a known prefix may be given
        if values[: len(known)] != known or known != sorted(known):
            found.append(f"{line['system']} at {line['rate_per_s']:g}/s: percentiles not monotone: {values}")
    for system, rounds in document.get("details", {}).items():
        for run in (rounds[0] if rounds else {}).get("latency", []):
            fractions = [f for _, f in run["to_start_cdf"]]
            if fractions != sorted(fractions):
                found.append(f"{system} at {run['rate_per_s']:g}/s: CDF falls")
            if run["to_start_ms"]["unfinished"] == 0 and fractions and abs(fractions[-1] - 1.0) > 1e-9:
                found.append(f"{system} at {run['rate_per_s']:g}/s: CDF ends at {fractions[-1]}, not 1")
    return found
