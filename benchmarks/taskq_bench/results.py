"""Result rows, machine information, and the JSON and CSV files a run writes.

Every figure is a :class:`Row`: one system, one experiment, one case, one metric, its
value (the median of ``runs`` when repeated) and a note. A system or case that could not
run is a row with ``value = None`` and the error in ``note`` (and in ``errors``): never
dropped. The JSON file holds the machine, the suite, the rows, the errors and per-run
details (latency CDFs); the CSV file holds the rows alone, one per line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import redis

SCHEMA_VERSION = 3
"""2: rows carry load_before, load_after and loaded; drain has per-workload grid rows.
3: rows carry outside_share, and ``loaded`` means CPU used outside the benchmark's processes
(``taskq_bench.fairness``), no longer a load average above 1.0 per core."""
#: How the harness knows a run is over, for the record (the same for every system).
COMPLETION_METHOD = (
    "each task calls taskq_bench.recorder.task_done as its last step; per worker process the count, "
    "earliest start and latest finish are flushed to Redis (bench:done, bench:edges) every 20 ms or "
    "256 tasks (inside the task for RQ's forking worker); a drain is complete when bench:done reaches N, "
    "and its throughput is N / (latest finish - earliest start), so worker start-up does not count"
)


@dataclass(slots=True)
class Row:
    system: str
    experiment: str
    """enqueue | drain | workload | latency | scaling"""
    case: str
    metric: str
    value: float | None
    unit: str
    setting: str = ""
    runs: list[float] = field(default_factory=list)
    note: str = ""
    load_before: float | None = None
    """The highest 1-minute load average at the start of the measurements behind this figure."""
    load_after: float | None = None
    loaded: bool = False
    """During some measurement behind this figure, processes outside the benchmark's own process
    tree used more than 10% of the machine's CPU (``taskq_bench.fairness``; before schema 3: it
    started above 1.0 load per core)."""
    outside_share: float | None = None
    """The highest share of the machine's CPU used outside the benchmark during a measurement behind it."""

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def redis_server_info(url: str) -> dict[str, Any]:
    with redis.Redis.from_url(url) as client:
        info: Any = client.info("server")
    return {"redis_version": info.get("redis_version"), "executable": info.get("executable", "")}


def python_version(python: str) -> str:
    try:
        out = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    return out.stdout.strip()


def machine_info() -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "redis_py": redis.__version__,
    }


@dataclass
class Results:
    """Everything one ``taskq_bench.run`` writes."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    started: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    schema: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, out_dir: Path, stem: str) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path = out_dir / f"{stem}.json"
        csv_path = out_dir / f"{stem}.csv"
        json_path.write_text(json.dumps(self.as_dict(), indent=1, default=str))
        write_csv(self.rows, csv_path)
        return json_path, csv_path


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=Row.columns())
        writer.writeheader()
        for row in rows:
            record = asdict(row)
            record["runs"] = " ".join(f"{r:g}" for r in row.runs)
            writer.writerow(record)


def rows_from_dicts(items: list[dict[str, Any]]) -> list[Row]:
    return [Row(**item) for item in items]


#: Drain rows that summarize a group of settings (the per-setting rows are merged per setting).
SUMMARY_CASES = ("1 process", "best 2-core")


def _merge_key(row: Row) -> tuple[str, ...]:
    per_setting = (row.experiment == "drain" and ":" not in row.case and row.case not in SUMMARY_CASES) or (
        row.experiment == "scaling"
    )
    return (row.system, row.experiment, row.case, row.metric, row.setting if per_setting else "")


def _median_value(values: list[float | None], unit: str) -> float | None:
    """Median across rounds. A missing latency is "beyond the run" (larger than any), a
    missing throughput is a failed round (left out)."""
    if unit == "ms":
        middle = statistics.median(math.inf if v is None else v for v in values)  # inf + x stays inf
        return None if math.isinf(middle) else round(middle, 3)
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def merge_rounds(rounds: list[list[Row]]) -> list[Row]:
    """One row per figure: the median over rounds (``runs`` holds each round's value; with a
    single round, that round's repetitions)."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for rows in rounds:
        for row in rows:
            groups.setdefault(_merge_key(row), []).append(row)
    merged = []
    for same in groups.values():
        first = same[0]
        values = [r.value for r in same]
        settings = " / ".join(dict.fromkeys(r.setting for r in same if r.setting))
        notes = "; ".join(dict.fromkeys(r.note for r in same if r.note))
        runs = [v for v in values if v is not None] if len(same) > 1 else list(first.runs)  # one round: its reps
        befores = [r.load_before for r in same if r.load_before is not None]
        afters = [r.load_after for r in same if r.load_after is not None]
        shares = [r.outside_share for r in same if r.outside_share is not None]
        merged.append(Row(first.system, first.experiment, first.case, first.metric, _median_value(values, first.unit),
                          first.unit, settings, runs, notes, max(befores, default=None), max(afters, default=None),
                          any(r.loaded for r in same), max(shares, default=None)))  # fmt: skip
    return merged


def thin_cdf(points: list[list[float]], step: float = 0.005) -> list[list[float]]:
    """A CDF with fewer points: one each time the fraction passes a multiple of ``step``, and
    every point of the tail above 0.99 (where P99 and P99.9 live), and the last."""
    kept: list[list[float]] = []
    next_fraction = 0.0
    for i, (bound, fraction) in enumerate(points):
        if fraction >= next_fraction or fraction > 0.99 or i == len(points) - 1:
            kept.append([bound, fraction])
            next_fraction = (math.floor(fraction / step) + 1) * step
    return kept


def compact(document: dict[str, Any]) -> dict[str, Any]:
    """The same results with thinned latency CDFs and without the adapters' docstrings: small
    enough to keep in the repository (``benchmarks/results/``)."""
    slim: dict[str, Any] = json.loads(json.dumps(document, default=str))
    for rounds in slim.get("details", {}).values():
        for details in rounds:
            for run in details.get("latency", []):
                run["to_start_cdf"] = thin_cdf(run["to_start_cdf"])
    for entry in slim.get("systems", {}).values():
        for info in entry.get("rounds", []):
            info.pop("adapter_doc", None)
    return slim
