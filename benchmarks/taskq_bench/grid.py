"""The drain experiment's settings: each system's documented defaults and a concurrency grid.

For one worker process and for two (the 2-core settings), a system is drained at its
documented default, at every concurrency of the suite's grid the system allows (a point it
cannot run is a row saying why: reported, never dropped) and at the adapter's own tuned
settings. The rows name each setting; per workload four summary rows give the defaults and
the best of the grid side by side:

* ``<workload>: default 1 process`` and ``<workload>: default 2-core``: the system as
  installed (``Adapter.default_one``, ``Adapter.default_two``);
* ``<workload>: best 1 process``: the best one-process setting;
* ``<workload>: best 2-core``: the best of every setting (any of them runs on two cores);
* for the no-op, also ``1 process`` and ``best 2-core`` as before (notebooks plot those).

Which setting is measured first rotates with the round, as the systems do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from taskq_bench.fairness import Load, load_fields, rotated
from taskq_bench.results import Row
from taskq_bench.systems.base import Adapter, WorkerSetting

ONE = "1 process"
TWO = "2-core"


@dataclass(frozen=True, slots=True)
class Point:
    """One setting of the plan: in ``group`` (``1 process`` or ``2-core``), the system's default
    or not, and ``setting`` None with ``missing`` saying why when the system cannot run it."""

    group: str
    label: str
    setting: WorkerSetting | None
    default: bool = False
    missing: str = ""


@dataclass(slots=True)
class Measured:
    """One setting's drain figure: the median of ``runs`` (tasks/s), a note, the loads around."""

    value: float | None
    runs: list[float] = field(default_factory=list)
    note: str = ""
    loads: list[Load] = field(default_factory=list)


def plan(
    adapter: Adapter, grid: Sequence[int], processes: Sequence[int] = (1, 2), limit: int | None = None
) -> list[Point]:
    """Every setting to drain ``adapter``'s system with: per process count, the default first,
    then the grid, then the adapter's tuned settings (the same setting once per group);
    ``limit`` keeps only the first ones (smoke runs)."""
    points: list[Point] = []
    for count in processes:
        group = ONE if count == 1 else TWO
        default = adapter.default_one if count == 1 else adapter.default_two
        points.append(Point(group, default.label, default, default=True))
        for concurrency in grid:
            setting = adapter.grid_setting(count, concurrency)
            if isinstance(setting, str):
                points.append(Point(group, f"{count}p x {concurrency}", None, missing=setting))
            else:
                points.append(Point(group, setting.label, setting))
        tuned = adapter.one_process if count == 1 else adapter.two_core
        points += [Point(group, setting.label, setting) for setting in tuned]
    unique = list({(p.group, p.label): p for p in reversed(points)}.values())[::-1]  # the first of each wins
    return unique[:limit]


def drain_grid(
    system: str,
    workload: str,
    points: Sequence[Point],
    measure: Callable[[WorkerSetting], Measured],
    round_number: int = 1,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> tuple[list[Row], WorkerSetting | None]:
    """Measure every runnable setting of ``points`` once (in an order rotated by the round), and
    the rows: one per point (missing ones with the reason), then the summary rows. Also the
    best setting, or None if none ran. A setting whose measurement raises is a row with the
    error (``on_error`` hears of it)."""
    settings = {p.label: p.setting for p in points if p.setting is not None}
    results: dict[str, Measured] = {}
    for label in rotated(list(settings), round_number):
        setting = settings[label]
        assert setting is not None
        try:
            results[label] = measure(setting)
        except Exception as exc:  # noqa: BLE001 - a row with the error, never dropped
            results[label] = Measured(None, note=f"{type(exc).__name__}: {exc}"[:500])
            if on_error is not None:
                on_error(label, exc)
    rows = [_point_row(system, workload, point, results.get(point.label)) for point in points]

    def summary(case: str, candidates: Sequence[Point]) -> None:
        ran = [p for p in candidates if p.setting is not None and results[p.label].value is not None]
        if not ran:
            note = "not run" if not candidates else "every setting failed or could not run"
            rows.append(Row(system, "drain", case, "tasks_per_s", None, "tasks/s", note=note))
            return
        best = max(ran, key=lambda p: results[p.label].value or 0.0)
        measured = results[best.label]
        rows.append(Row(system, "drain", case, "tasks_per_s", measured.value, "tasks/s", best.label,
                        list(measured.runs), measured.note, **load_fields(measured.loads)))  # fmt: skip

    for group in dict.fromkeys(p.group for p in points):  # a suite may leave out the 2-core settings
        summary(f"{workload}: default {group}", [p for p in points if p.group == group and p.default])
    summary(f"{workload}: best {ONE}", [p for p in points if p.group == ONE])
    summary(f"{workload}: best {TWO}", list(points))
    if workload == "noop":  # the figures the notebooks plot
        summary(ONE, [p for p in points if p.group == ONE])
        summary("best 2-core", list(points))
    best_label = max((label for label in results if results[label].value is not None),
                     key=lambda label: results[label].value or 0.0, default=None)  # fmt: skip
    return rows, None if best_label is None else settings[best_label]


def _point_row(system: str, workload: str, point: Point, measured: Measured | None) -> Row:
    if point.setting is None:
        return Row(system, "drain", workload, "tasks_per_s", None, "tasks/s", point.label,
                   note=f"not run: {point.missing}")  # fmt: skip
    assert measured is not None
    return Row(system, "drain", workload, "tasks_per_s", measured.value, "tasks/s", point.label,
               list(measured.runs), measured.note, **load_fields(measured.loads))  # fmt: skip
