"""Benchmarks fair by construction (issue 14): the systems' order rotates each round, every
figure is the median of the rounds with its spread, a setting a system cannot run is reported
(not dropped), the CPU used outside the benchmark around each measurement is recorded and
flagged when high, and the I/O task really makes its Redis round trip (a short real run of
taskq alone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from taskq_bench import fairness, grid, outside, run
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


# -- load: CPU used outside the benchmark's process tree -------------------------------

#: Burns argv[1] seconds of CPU time (not wall time: the same work however busy the machine is).
BURN = "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < float(sys.argv[1]):\n    pass\n"
#: A stand-in for the benchmark's own tree: on "go", a child burns 0.5 s of CPU; then "done".
BENCH = (
    "import subprocess, sys\nsys.stdin.readline()\n"
    f"subprocess.run([sys.executable, '-c', {BURN!r}, '0.5'], check=True)\n"
    "print('done', flush=True)\nsys.stdin.read()\n"
)


def _cpu_s(pid: int) -> float:
    proc = outside.parse_stat(Path(f"/proc/{pid}/stat").read_text())
    assert proc is not None
    return proc.own / outside.TICKS_PER_S


def _measure_bench(busy: list[subprocess.Popen[bytes]]) -> fairness.Load:
    """One measurement of the stand-in benchmark, counting only this test's processes as the
    machine (``within``: other work on a shared machine stays out), with ``busy`` processes
    burning beside it until they have used 0.5 s of CPU between them."""
    bench = subprocess.Popen([sys.executable, "-c", BENCH], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert bench.stdin is not None and bench.stdout is not None
    try:
        with fairness.measured_load(ncores=1, root=bench.pid, within=os.getpid()) as load:
            mark = sum(_cpu_s(p.pid) for p in busy)
            bench.stdin.write("go\n")
            bench.stdin.flush()
            assert bench.stdout.readline().strip() == "done"
            while busy and sum(_cpu_s(p.pid) for p in busy) - mark < 0.5:
                time.sleep(0.02)
    finally:
        bench.stdin.close()
        bench.wait(10)
        bench.stdout.close()
    return load


def test_only_cpu_used_outside_the_benchmarks_process_tree_flags_a_measurement() -> None:
    quiet = _measure_bench([])  # the benchmark's own child burns 0.5 s: its own load, not flagged
    assert quiet.own_s is not None and quiet.own_s >= 0.45
    assert quiet.outside_s is not None and quiet.outside_s < fairness.OUTSIDE_FLOOR_S
    assert not quiet.loaded
    # Real processes outside the tree; four, so that on a machine other work keeps busy they still
    # get a good share of it between them (as another workload would).
    busy = [subprocess.Popen([sys.executable, "-c", BURN, "60"]) for _ in range(4)]
    try:
        shared = _measure_bench(busy)
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    assert shared.outside_s is not None and shared.outside_s >= 0.45  # the busy processes' 0.5 s
    assert shared.own_s is not None and shared.own_s >= 0.45
    assert shared.outside_share is not None and shared.outside_share > fairness.OUTSIDE_LIMIT
    assert shared.loaded
    assert fairness.load_fields([quiet, shared]) == {
        "load_before": max(quiet.before, shared.before),
        "load_after": max(quiet.after or 0, shared.after or 0),
        "outside_share": shared.outside_share,
        "loaded": True,
    }
    assert fairness.load_fields([quiet])["loaded"] is False
    fields = fairness.load_fields([shared])
    row = Row("taskq", "drain", "io: default 1 process", "tasks_per_s", 5.0, "tasks/s", **fields)
    assert LOADED in grid_table([row], "io")
    text = render({"machine": {}, "settings": {"rounds": 3}, "rows": [asdict(row)], "systems": {}, "schema": 3})
    assert f"{LOADED} 1 of 1 figures include a measurement during which that was above 10%" in text
    (merged,) = merge_rounds([[replace(row, outside_share=0.02, loaded=False)], [row]])
    assert merged.loaded and merged.outside_share == shared.outside_share


def test_a_high_load_average_alone_does_not_flag() -> None:
    readings = iter([64.0, 64.0])
    with fairness.measured_load(lambda: next(readings), ncores=2, within=os.getpid()) as load:
        pass  # the load average of a run's own previous measurement: recorded, not a flag
    assert (load.before, load.after, load.loaded) == (64.0, 64.0, False)


def test_outside_parses_a_name_with_spaces_and_parentheses() -> None:
    fields = ["S", "7", "0", "0", "0", "-1", str(outside.PF_KTHREAD), *["0"] * 4, "3", "4", "5", "6", *["0"] * 4, "99"]
    proc = outside.parse_stat("42 (a (b) c) " + " ".join(fields))
    assert proc == outside.Proc(42, 7, 99, 7, 11, True)


# -- a real run: taskq alone, the I/O task ----------------------------------------------


def test_taskq_drains_the_io_task_and_a_busy_process_outside_it_is_flagged(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(outside.TREE_ROOT_ENV, raising=False)  # this process's tree is the benchmark's
    # A real busy process outside the tree: started by a shell that exits, so it is not ours.
    launched = subprocess.run(["sh", "-c", '"$0" -c "$1" 60 >/dev/null 2>&1 & echo $!', sys.executable, BURN],
                              capture_output=True, text=True, check=True)  # fmt: skip
    busy = int(launched.stdout.strip())
    try:
        suite = replace(SUITES["smoke"], drain_count=100, drain_workloads=("io",))
        document = run_to_document("taskq", redis_url, suite, ["drain"], tmp_path, _taskq_adapter)
    finally:
        os.kill(busy, signal.SIGKILL)
    assert document["errors"] == []
    rows = {(r["case"], r["setting"]): r for r in document["rows"]}
    default = rows[("io: default 1 process", "1p x 100")]
    assert default["value"] > 0 and default["note"] == ""  # all 100 done, not partial
    assert default["loaded"] is True and default["outside_share"] > fairness.OUTSIDE_LIMIT
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
