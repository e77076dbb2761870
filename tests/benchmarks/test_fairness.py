"""Benchmarks fair by construction (issue 14): the systems' order rotates each round, every
figure is the median of the rounds with its spread, a setting a system cannot run is reported
(not dropped), the load around each measurement is recorded and flagged when high, and the I/O
task really makes its Redis round trip (a short real run of taskq alone)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from taskq_bench import fairness, grid, run
from taskq_bench.grid import Measured
from taskq_bench.report import DASH, LOADED, grid_table, render, settings_table
from taskq_bench.results import Row, merge_rounds
from taskq_bench.suite import SUITES
from taskq_bench.system_run import run_to_document
from taskq_bench.systems.base import IO_KEY, Adapter, WorkerSetting

# -- order -------------------------------------------------------------------------


def test_round_order_rotates_so_every_system_goes_first_once() -> None:
    systems = ["taskq", "rq", "huey"]
    orders = [fairness.round_order(systems, n) for n in (1, 2, 3, 4)]
    assert orders[:3] == [["taskq", "rq", "huey"], ["rq", "huey", "taskq"], ["huey", "taskq", "rq"]]
    assert orders[3] == orders[0]
    assert [sorted(o) for o in orders] == [sorted(systems)] * 4
    shuffled = [fairness.round_order(systems, n, seed=7) for n in (1, 2, 3)]
    assert shuffled == [fairness.round_order(systems, n, seed=7) for n in (1, 2, 3)]  # reproducible
    assert all(sorted(o) == sorted(systems) for o in shuffled)
    assert fairness.round_order([], 2) == []


def test_run_all_rotates_the_order_each_round_and_reports_median_and_spread(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, str]] = []
    figures = {"taskq": [300.0, 100.0, 200.0], "rq": [10.0, 30.0, 20.0], "huey": [5.0, 6.0, 7.0]}

    def fake_run_one(system: str, suite: Any, experiments: Any, out: Path, url: Any, round_number: int) -> Any:
        calls.append((round_number, system))
        value = figures[system][round_number - 1]
        row = Row(system, "drain", "io: default 1 process", "tasks_per_s", value, "tasks/s", "1p x 10", [value])
        info = {"version": "1", "redis_py": "x", "loadavg_before": [0.1], "loadavg_after": [0.2]}
        return {"system": system, "info": info, "rows": [asdict(row)], "errors": [], "details": {}}

    monkeypatch.setattr(run, "run_one", fake_run_one)
    results = run.run_all(["taskq", "rq", "huey"], SUITES["smoke"], ["drain"], tmp_path, "cmd", 3, redis_url)
    by_round = [[s for n, s in calls if n == k] for k in (1, 2, 3)]
    assert by_round == [["taskq", "rq", "huey"], ["rq", "huey", "taskq"], ["huey", "taskq", "rq"]]
    assert results.settings["orders"] == by_round and results.settings["order"] == "rotated"
    merged = {r.system: r for r in results.rows}
    assert merged["taskq"].value == 200.0 and sorted(merged["taskq"].runs) == [100.0, 200.0, 300.0]
    table = grid_table(results.rows, "io")
    assert f"200 (100{DASH}300) [1p x 10]" in table and f"20 (10{DASH}30)" in table
    text = render(results.as_dict())
    assert "Rounds: 3; system order rotated each round: taskq → rq → huey; rq → huey → taskq" in text
    assert "not for publication" not in text


def test_rounds_merge_per_setting_and_summaries_across_settings() -> None:
    def rows(value: float, best: str) -> list[Row]:
        unit = "tasks/s"
        return [Row("dramatiq", "drain", "io", "tasks_per_s", value, unit, "1p x 8", [value]),
                Row("dramatiq", "drain", "io", "tasks_per_s", value / 2, unit, "1p x 200", [value / 2]),
                Row("dramatiq", "drain", "io: best 1 process", "tasks_per_s", value, unit, best, [value])]  # fmt: skip

    merged = merge_rounds([rows(100.0, "1p x 8"), rows(300.0, "1p x 8"), rows(200.0, "1p x 200")])
    by = {(r.case, r.setting): (r.value, sorted(r.runs)) for r in merged}
    assert by == {
        ("io", "1p x 8"): (200.0, [100.0, 200.0, 300.0]),
        ("io", "1p x 200"): (100.0, [50.0, 100.0, 150.0]),
        ("io: best 1 process", "1p x 8 / 1p x 200"): (200.0, [100.0, 200.0, 300.0]),
    }
    (single,) = merge_rounds([[Row("rq", "enqueue", "single", "tasks_per_s", 5.0, "tasks/s", runs=[4.0, 5.0, 7.0])]])
    assert single.runs == [4.0, 5.0, 7.0]  # one round: the spread of its repetitions


def test_a_single_round_is_marked_not_for_publication() -> None:
    document = {"machine": {}, "settings": {"rounds": 1, "orders": [["taskq"]]}, "rows": [], "systems": {}}
    assert "Fewer than 3 rounds: not for publication." in render(document)


# -- the grid: defaults, best of grid, settings a system cannot run -------------------------


class _OneAtATime(Adapter):
    """A system that runs one task at a time per process (as RQ), with a tuned variant."""

    name = "solo"
    distribution = "solo"
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 1, "fast"),)
    two_core: ClassVar[tuple[WorkerSetting, ...]] = ()
    default_one = WorkerSetting(1, 1)
    default_two = WorkerSetting(2, 1)

    def grid_setting(self, processes: int, concurrency: int) -> WorkerSetting | str:
        return WorkerSetting(processes, 1) if concurrency == 1 else "one task at a time per process"


def test_a_setting_the_system_cannot_run_is_reported_not_dropped() -> None:
    points = grid.plan(_OneAtATime("redis://x"), (1, 10, 50), (1, 2))
    labels = [(p.group, p.label, p.default, bool(p.missing)) for p in points]
    assert labels == [
        ("1 process", "1p x 1", True, False),  # the grid's 1p x 1 is the default: measured once
        ("1 process", "1p x 10", False, True),
        ("1 process", "1p x 50", False, True),
        ("1 process", "1p x 1 fast", False, False),
        ("2-core", "2p x 1", True, False),
        ("2-core", "2p x 10", False, True),
        ("2-core", "2p x 50", False, True),
    ]
    measured: list[str] = []
    errors: list[str] = []

    def measure(setting: WorkerSetting) -> Measured:
        measured.append(setting.label)
        if setting.variant == "fast":
            raise RuntimeError("worker exited")
        return Measured(100.0 * setting.processes, [90.0 * setting.processes, 110.0 * setting.processes])

    rows, best = grid.drain_grid("solo", "io", points, measure, 2, lambda label, exc: errors.append(label))
    assert measured == ["1p x 1 fast", "2p x 1", "1p x 1"]  # round 2: rotated by one
    assert errors == ["1p x 1 fast"] and best == WorkerSetting(2, 1)
    per_setting = {r.setting: r for r in rows if r.case == "io"}
    assert set(per_setting) == {p.label for p in points}  # every point has its row
    for label in ("1p x 10", "1p x 50", "2p x 10", "2p x 50"):
        assert per_setting[label].value is None
        assert per_setting[label].note == "not run: one task at a time per process"
    assert per_setting["1p x 1 fast"].value is None and "RuntimeError: worker exited" in per_setting["1p x 1 fast"].note
    summary = {r.case: (r.value, r.setting) for r in rows if r.case != "io"}
    assert summary == {
        "io: default 1 process": (100.0, "1p x 1"),
        "io: default 2-core": (200.0, "2p x 1"),
        "io: best 1 process": (100.0, "1p x 1"),
        "io: best 2-core": (200.0, "2p x 1"),
    }
    assert "not run: one task at a time per process" in settings_table(rows, "io")
    one_only, _ = grid.drain_grid("solo", "noop", grid.plan(_OneAtATime("redis://x"), (), (1,), limit=1), measure)
    cases = [r.case for r in one_only]  # a suite without 2-core settings: no empty 2-core default row
    assert cases == ["noop", "noop: default 1 process", "noop: best 1 process", "noop: best 2-core", "1 process",
                     "best 2-core"]  # fmt: skip
    assert f"100 (90{DASH}110) [1p x 1]" in grid_table(rows, "io")


def test_every_adapter_states_its_defaults_and_its_producer() -> None:
    from taskq_bench.systems import taskq as taskq_system

    adapter = taskq_system.ADAPTER("redis://x")
    from taskq.worker import default_concurrency

    own = default_concurrency(taskq_system.tq.registry.values())  # `taskq worker`'s own default for these tasks
    assert adapter.default_one == WorkerSetting(1, own) and adapter.default_two == WorkerSetting(2, own) and own == 100
    assert "batched" in adapter.producer_note and "feature" in adapter.producer_note
    for point in grid.plan(adapter, SUITES["short"].grid):
        assert point.setting is not None  # taskq runs every point of the grid
    source = Path(taskq_system.__file__).parent
    for module in source.glob("*.py"):
        if module.stem not in {"__init__", "base", "taskq"}:
            text = module.read_text()
            assert "default_one = " in text and "producer_note = " in text and "def io(" in text, module.stem


# -- load --------------------------------------------------------------------------


def test_a_measurement_that_starts_above_one_load_per_core_is_flagged() -> None:
    readings = iter([2.5, 1.0, 1.9, 3.0])
    with fairness.measured_load(lambda: next(readings), ncores=2) as high:
        pass
    with fairness.measured_load(lambda: next(readings), ncores=2) as quiet:
        pass
    assert (high.before, high.after, high.loaded) == (2.5, 1.0, True)
    assert (quiet.before, quiet.after, quiet.loaded) == (1.9, 3.0, False)  # only the start counts
    assert fairness.load_fields([quiet, high]) == {"load_before": 2.5, "load_after": 3.0, "loaded": True}
    assert fairness.load_fields([quiet])["loaded"] is False
    row = Row("taskq", "drain", "io: default 1 process", "tasks_per_s", 5.0, "tasks/s", **fairness.load_fields([high]))
    assert LOADED in grid_table([row], "io")


# -- a real run: taskq alone, the I/O task ----------------------------------------------


def test_taskq_drains_the_io_task_and_the_high_load_is_flagged(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fairness, "read_load", lambda: 64.0)  # injected: far above 1.0 per core
    suite = replace(SUITES["smoke"], drain_count=100, drain_workloads=("io",))
    document = run_to_document("taskq", redis_url, suite, ["drain"], tmp_path, _taskq_adapter)
    assert document["errors"] == []
    rows = {(r["case"], r["setting"]): r for r in document["rows"]}
    default = rows[("io: default 1 process", "1p x 100")]
    assert default["value"] > 0 and default["note"] == ""  # all 100 done, not partial
    assert default["loaded"] is True and default["load_before"] == 64.0
    with redis.Redis.from_url(redis_url) as client:
        assert int(client.get(IO_KEY) or 0) == 100  # each task made its one round trip
    assert document["info"]["defaults"][0] == "1p x 100" and "feature" in document["info"]["producer"]
    (io_row,) = [r for r in document["rows"] if r["case"] == "io"]
    assert io_row["setting"] == "1p x 100" and io_row["loaded"] is True


def _taskq_adapter(system: str, url: str) -> Adapter:
    from taskq_bench.systems.taskq import TaskqAdapter

    return TaskqAdapter(url)


def test_rotation_covers_every_position() -> None:
    systems = ["a", "b", "c", "d"]
    firsts = [fairness.round_order(systems, n)[0] for n in range(1, 5)]
    assert sorted(firsts) == systems
    assert fairness.rotated([1, 2, 3], 2) == [2, 3, 1] and fairness.rotated([], 5) == []
