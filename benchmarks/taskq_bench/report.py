"""Markdown tables from a results file: what the README and the issue reports quote.

python -m taskq_bench.report bench-results/bench-short-….json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from taskq_bench.results import Row, rows_from_dicts


def _find(rows: Iterable[Row], system: str, experiment: str, case: str, metric: str) -> Row | None:
    for row in rows:
        if (row.system, row.experiment, row.case, row.metric) == (system, experiment, case, metric):
            return row
    return None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


#: Marks a figure during some measurement of which processes outside the benchmark used more
#: than 10% of the machine's CPU (:mod:`taskq_bench.fairness`).
LOADED = "⚠"
DASH = "\N{EN DASH}"


def _spread(row: Row, digits: int = 0) -> str:
    """`` (min-max)`` of the rounds (or repetitions) behind a figure, when there are several."""
    if len(row.runs) < 2:
        return ""
    return f" ({_fmt(min(row.runs), digits)}{DASH}{_fmt(max(row.runs), digits)})"


def _cell(row: Row | None, digits: int = 0, with_setting: bool = False) -> str:
    """The median, its spread, the setting, the reason when missing, and the load flag."""
    if row is None:
        return ""
    text = _fmt(row.value, digits) + _spread(row, digits)
    if row.value is None and row.note:
        text += f" ({row.note[:80]})"
    if with_setting and row.setting:
        text += f" [{row.setting}]"
    if row.loaded:
        text += f" {LOADED}"
    return text


def _table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def systems_of(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(row.system for row in rows))


def enqueue_table(rows: Sequence[Row]) -> str:
    cases = list(dict.fromkeys(r.case for r in rows if r.experiment == "enqueue"))
    if not cases:
        return ""
    lines = [[s, *(_cell(_find(rows, s, "enqueue", c, "tasks_per_s")) for c in cases)] for s in systems_of(rows)]
    return _table(["enqueue tasks/s", *cases], lines)


def drain_table(rows: Sequence[Row]) -> str:
    header = ["drain tasks/s", "1 process", "best 2-core", "cpu (best)", "sleep (best)", "mix (best)"]
    lines = []
    for s in systems_of(rows):
        lines.append([
            s,
            _cell(_find(rows, s, "drain", "1 process", "tasks_per_s"), with_setting=True),
            _cell(_find(rows, s, "drain", "best 2-core", "tasks_per_s"), with_setting=True),
            *(_cell(_find(rows, s, "workload", w, "tasks_per_s")) for w in ("cpu", "sleep", "mix")),
        ])  # fmt: skip
    if not any(any(cell for cell in line[1:]) for line in lines):
        return ""  # no no-op drain and no workloads in this run
    return _table(header, lines)


#: The drain workloads, in the order the report shows them (the I/O task is the headline).
DRAIN_TITLES = {
    "io": "Drain, I/O task (one Redis round trip per task), tasks/s",
    "noop": "Drain, no-op task, tasks/s",
}


def grid_table(rows: Sequence[Row], workload: str) -> str:
    """Per system, the documented defaults and the best of the grid side by side (one process,
    and on two cores), each the median over rounds with its spread and its setting."""
    cases = ["default 1 process", "best 1 process", "default 2-core", "best 2-core"]
    present = [s for s in systems_of(rows) if _find(rows, s, "drain", f"{workload}: {cases[0]}", "tasks_per_s")]
    lines = [[s, *(_cell(_find(rows, s, "drain", f"{workload}: {c}", "tasks_per_s"), with_setting=True)
                   for c in cases)] for s in present]  # fmt: skip
    title = DRAIN_TITLES.get(workload, f"Drain, {workload} task, tasks/s")
    return _table([title, "default, 1 process", "best of grid, 1 process", "default, 2 cores", "best of grid, 2 cores"],
                  lines)  # fmt: skip


def settings_table(rows: Sequence[Row], workload: str) -> str:
    """Every setting of the grid for one workload, settings a system cannot run included."""
    lines = [[r.system, r.setting, _cell(r), r.note[:100] if r.value is not None else ""]
             for r in rows if (r.experiment, r.case, r.metric) == ("drain", workload, "tasks_per_s")]  # fmt: skip
    return _table([f"drain {workload}: every setting", "setting", "tasks/s (spread)", "note"], lines)


def drain_workloads(rows: Sequence[Row]) -> list[str]:
    """The workloads with grid rows, the I/O task first."""
    found = {
        r.case.split(":", 1)[0] for r in rows if r.experiment == "drain" and r.case.endswith(": default 1 process")
    }
    return sorted(found, key=lambda w: (list(DRAIN_TITLES).index(w) if w in DRAIN_TITLES else len(DRAIN_TITLES), w))


def fairness_text(document: dict[str, Any], rows: Sequence[Row]) -> str:
    """How the figures came about: rounds, each round's order, and the measurements flagged as loaded."""
    settings = document.get("settings", {})
    rounds = settings.get("rounds", 1)
    orders = settings.get("orders") or []
    how = f"shuffled (seed {settings.get('seed')})" if settings.get("order") == "shuffled" else "rotated"
    text = [f"Rounds: {rounds}; system order {how} each round: " + "; ".join(" → ".join(o) for o in orders) + "."
            if orders else f"Rounds: {rounds}."]  # fmt: skip
    text.append(f"Each figure is the median over the rounds, (min{DASH}max) the spread of the rounds (of the "
                "repetitions in a single round); [setting]: the worker setting, processes x concurrency.")  # fmt: skip
    text.append(outside_text(document, rows))
    if rounds < 3:
        text.append("Fewer than 3 rounds: not for publication.")
    return " ".join(text)


def outside_text(document: dict[str, Any], rows: Sequence[Row]) -> str:
    """What the load flag measured, and what it found."""
    loaded = [r for r in rows if r.loaded]
    shares = [r.outside_share for r in rows if r.outside_share is not None]
    if document.get("schema", 0) < 3:  # a file from before: the load average flagged
        old = "started with the 1-minute load average above 1.0 per core (its own previous measurement counted too)."
        return f"{LOADED} {len(loaded)} figures include a measurement that {old}" if loaded else ""
    if not shares:
        return "CPU used outside the benchmark: not measured (no /proc)."
    text = (f"Around each measurement, the CPU used by processes outside the benchmark's own process tree "
            f"(/proc; kernel threads and interrupts not counted): at most {max(shares):.1%} of the machine "
            f"(cores x wall time), median of the figures' highest {_median(shares):.1%}.")  # fmt: skip
    if loaded:
        text += (f" {LOADED} {len(loaded)} of {len(rows)} figures include a measurement during which that was above "
                 "10%: another workload shared the machine.")  # fmt: skip
    else:
        text += " No measurement reached 10% (the flag's bound): nothing else used the machine."
    return text


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def latency_table(rows: Sequence[Row], measure: str = "to_start") -> str:
    cases = list(dict.fromkeys(r.case for r in rows if r.experiment == "latency"))
    if not cases:
        return ""  # no latency runs
    lines = []
    for s in systems_of(rows):
        line = [s]
        for case in cases:
            p50 = _find(rows, s, "latency", case, f"{measure}_p50")
            p99 = _find(rows, s, "latency", case, f"{measure}_p99")
            if p50 is None or p99 is None:
                line.append("")
                continue
            text = f"{_fmt(p50.value, 2)} / {_fmt(p99.value, 2)}{_spread(p99, 2)}"
            if p99.note:
                text += f" ({p99.note[:60]})"
            if p99.loaded:
                text += f" {LOADED}"
            line.append(text)
        lines.append(line)
    return _table([f"enqueue→{measure.removeprefix('to_')} ms P50 / P99 (P99 spread)", *cases], lines)


#: A rate is "sustained" when every task finished and P99 enqueue→start stayed under this.
SUSTAINED_P99_MS = 100.0


def sustained_rate(rows: Sequence[Row], system: str) -> tuple[float | None, float | None]:
    """(highest offered rate sustained, lowest rate not sustained) among those measured: the
    knee of latency vs offered load lies between them."""
    points = []
    for row in rows:
        if (row.system, row.experiment, row.metric) == (system, "latency", "to_start_p99"):
            rate = float(row.case.removesuffix("/s"))
            points.append((rate, row.value is not None and row.value < SUSTAINED_P99_MS and not row.note))
    points.sort()
    held = [rate for rate, ok in points if ok]
    broke = [rate for rate, ok in points if not ok]
    return (max(held) if held else None), (min(broke) if broke else None)


def knee_table(rows: Sequence[Row]) -> str:
    if not any(r.experiment == "latency" for r in rows):
        return ""
    lines = []
    for s in systems_of(rows):
        held, broke = sustained_rate(rows, s)
        lines.append([s, _fmt(held), _fmt(broke)])
    return _table([f"offered load (P99 start < {SUSTAINED_P99_MS:g} ms, all done)", "sustained up to /s",
                   "first rate not sustained /s"], lines)  # fmt: skip


def producers_table(systems: dict[str, dict[str, Any]]) -> str:
    """What each system's producer does per call, and its documented default worker settings."""
    lines = []
    for name, entry in systems.items():
        ok = [info for info in entry.get("rounds", [entry]) if "error" not in info]
        if ok and ok[0].get("producer"):
            lines.append([name, ok[0]["producer"], " / ".join(ok[0].get("defaults", []))])
    return _table(["system", "producer (per enqueue call)", "defaults: 1 process / 2 cores"], lines) if lines else ""


def _share(info: dict[str, Any]) -> str:
    share = info.get("outside_share_max")
    return ("—" if share is None else f"{share:.1%}") + f" ({info.get('flagged', 0)})"


def systems_table(systems: dict[str, dict[str, Any]]) -> str:
    """Per system: version, and per round the load average around it, the highest share of the
    machine used outside the benchmark during a measurement, and Redis's CPU time."""
    lines = []
    for name, entry in systems.items():
        rounds = entry.get("rounds", [entry])
        errors = [info["error"] for info in rounds if "error" in info]
        ok = [info for info in rounds if "error" not in info]
        if not ok:
            lines.append([name, "could not run", "", "", "", "", errors[0][:160]])
            continue
        loads = ", ".join(f"{i['loadavg_before'][0]} → {i['loadavg_after'][0]}" for i in ok if "loadavg_before" in i)
        outside = ", ".join(_share(i) for i in ok if "outside_share_max" in i) or "—"
        cpu = ", ".join(_fmt(i.get("redis_cpu_s"), 1) for i in ok)
        lines.append([name, ok[0]["version"], ok[0]["redis_py"], loads, outside, cpu, ok[0].get("bulk_api") or "—"])
    header = ["system", "version", "redis-py", "load avg (1 min) before → after, per round",
              "outside CPU, highest share (flagged figures), per round", "redis-server CPU s, per round",
              "bulk API"]  # fmt: skip
    return _table(header, lines)


def render(document: dict[str, Any]) -> str:
    rows = rows_from_dicts(document["rows"])
    machine = document["machine"]
    workloads = drain_workloads(rows)
    parts = [
        f"Machine: {machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}), Python {machine.get('python')}, "
        f"redis-server {machine.get('redis_server', {}).get('redis_version')} "
        f"({machine.get('redis_server', {}).get('used', 'a private redis-server per system')}); load average before "
        f"{machine.get('loadavg_before')}, after {machine.get('loadavg_after')}.",
        f"Command: `{document['settings'].get('command', '')}`",
        fairness_text(document, rows),
        systems_table(document.get("systems", {})),
        producers_table(document.get("systems", {})),
        *(grid_table(rows, w) for w in workloads),
        enqueue_table(rows),
        drain_table(rows),
        latency_table(rows, "to_start"),
        latency_table(rows, "to_finish"),
        knee_table(rows),
        *(settings_table(rows, w) for w in workloads),
    ]
    parts = [part for part in parts if part]
    if document.get("errors"):
        parts.append("Errors:\n" + "\n".join(f"- {e['system']} {e['experiment']} {e['case']}: {e['error'][:300]}"
                                             for e in document["errors"]))  # fmt: skip
    return "\n\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    args = parser.parse_args(argv)
    print(render(json.loads(args.results.read_text())))


if __name__ == "__main__":
    main()
