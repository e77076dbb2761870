"""The benchmark harness measures what it says: exact percentiles, an open-loop schedule
that never waits for the system, results in a stable schema, and adapters that really run
(taskq end to end here; each peer as a smoke run in its own virtualenv, skipped when
``benchmarks/setup_peers.sh`` has not been run)."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from taskq_bench import recorder
from taskq_bench.openloop import Schedule, run_open_loop, threaded
from taskq_bench.results import Results, Row, merge_rounds, rows_from_dicts
from taskq_bench.stats import LogHistogram, summarize_ms
from taskq_bench.suite import SUITES
from taskq_bench.system_run import run_to_document
from taskq_bench.systems import PEERS, python_for
from taskq_bench.systems.base import ROOT, WorkerSetting

from taskq.server import EmbeddedServer
from taskq.telemetry import nearest_rank_ms

# -- percentiles ------------------------------------------------------------------


def test_summary_percentiles_are_taskq_nearest_rank_on_known_data() -> None:
    summary = summarize_ms(float(v) for v in range(100, 0, -1))  # 1..100, unsorted
    assert [summary[q] for q in ("p50", "p90", "p99", "p999", "max")] == [50, 90, 99, 100, 100]
    assert summarize_ms(float(v) for v in range(1, 1001))["p999"] == 999
    assert summarize_ms([7.0])["p50"] == 7
    values = [0.3, 9.1, 4.4, 2.2, 7.7, 1.0, 5.5]
    assert summarize_ms(values)["p90"] == nearest_rank_ms(values, 900)


def test_summary_reports_every_quantile_and_unknown_tails() -> None:
    summary = summarize_ms([5.0, 1.0, 3.0, 2.0, 4.0])
    assert summary == {"count": 5, "unfinished": 0, "p50": 3.0, "p90": 5.0, "p99": 5.0, "p999": 5.0,
                       "max": 5.0, "mean": 3.0}  # fmt: skip
    # 90 finished, 10 never did: P50 is known, P99 lies among the unfinished (unknown, not flattering)
    partial = summarize_ms([float(v) for v in range(90)], unfinished=10)
    assert partial["p50"] == 49.0
    assert partial["p90"] == 89.0
    assert partial["p99"] is None and partial["max"] is None
    assert summarize_ms([])["p50"] is None


def test_histogram_cdf_rises_to_one_and_bounds_each_value() -> None:
    values = [0.5, 1.0, 1.0, 2.0, 100.0]
    cdf = LogHistogram.of(values, lowest=0.01, precision=0.02).cdf()
    fractions = [f for _, f in cdf]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    for value in values:  # every value sits at or below its bucket's bound, within 2 %
        bound = min(b for b, _ in cdf if b >= value * (1 - 1e-9))
        assert value <= bound * (1 + 1e-9) <= value * 1.02 + 1e-9


# -- the open-loop schedule ----------------------------------------------------------


def test_producers_share_a_schedule_without_gaps_or_overlap() -> None:
    shares = [Schedule(1000, 103, 0.0, offset, 4).indices() for offset in range(4)]
    assert sorted(i for share in shares for i in share) == list(range(103))
    assert Schedule(200, 10, 5.0).intended(3) == pytest.approx(5.015)


def test_open_loop_never_waits_for_a_slow_async_system() -> None:
    rate, count, slow_s = 200.0, 40, 0.05  # each send takes 10 sends' worth of time

    async def slow_send(intended: float) -> None:
        await asyncio.sleep(slow_s)

    t0 = time.time() + 0.05
    log = asyncio.run(run_open_loop(Schedule(rate, count, t0), slow_send))
    assert sorted(log.intended) == [t0 + i / rate for i in range(count)]
    issued = dict(zip(log.intended, log.issued, strict=True))
    lateness = [issued[t] - t for t in sorted(issued)]
    # closed-loop would fall 45 ms further behind per send (1.8 s by the end); open-loop stays on
    # time (bounds loose enough for a loaded CI machine, far below the closed-loop drift)
    assert max(lateness) < 0.2
    assert statistics.median(lateness) < 0.02
    assert max(log.returned) - t0 < count / rate + slow_s + 0.3


def test_open_loop_never_waits_for_a_slow_blocking_system() -> None:
    rate, count = 200.0, 30

    def slow_send(intended: float) -> None:
        time.sleep(0.05)

    t0 = time.time() + 0.05
    with ThreadPoolExecutor(16) as pool:
        log = asyncio.run(run_open_loop(Schedule(rate, count, t0), threaded(slow_send, pool)))
    lateness = sorted(i - t for i, t in zip(log.issued, log.intended, strict=True))
    assert len(lateness) == count and not log.errors
    assert max(lateness) < 0.2  # closed-loop: 1.35 s behind by the last send
    assert max(log.returned) - t0 < count / rate + 0.05 + 0.3


def test_open_loop_runs_work_a_send_hands_to_another_task_before_the_next_send() -> None:
    # A client that sends from a task of its own (taskq's async client batches so) must not
    # wait for the next due time; on a fake clock that ticks 10 us per reading, the loop
    # runs that task within a few ticks of its send, not 2 ms (200 ticks) later.
    now = [1000.0]

    def clock() -> float:
        now[0] += 0.00001
        return now[0]

    ran_at: dict[float, float] = {}
    background: set[asyncio.Task[None]] = set()

    async def send_later(intended: float) -> None:
        async def really_send() -> None:
            ran_at[intended] = clock()

        task = asyncio.create_task(really_send())
        background.add(task)  # kept until run; the send returns before it has

    rate, count = 500.0, 20
    asyncio.run(run_open_loop(Schedule(rate, count, 1000.001), send_later, clock=clock))
    lags = [ran_at[t] - t for t in sorted(ran_at)]
    assert len(lags) >= count - 1  # the last may still be pending when the loop ends
    assert max(lags[:-1]) < 0.5 / rate, lags


def test_open_loop_counts_failed_sends_and_goes_on() -> None:
    async def flaky(intended: float) -> None:
        if len(str(intended)) % 2:
            raise ConnectionError("refused")

    log = asyncio.run(run_open_loop(Schedule(1000, 20, time.time()), flaky))
    assert len(log.intended) == 20
    assert all(e == "ConnectionError: refused" for e in log.errors)


# -- results ---------------------------------------------------------------------


def test_results_json_and_csv_schema(tmp_path: Path) -> None:
    results = Results({"cpu_count": 2}, {"suite": {"name": "tiny"}})
    results.rows = [
        Row("taskq", "drain", "1 process", "tasks_per_s", 1234.0, "tasks/s", "1p x 200", [1200.0, 1234.0, 1300.0]),
        Row("rq", "system", "all", "ran", None, "", note="no Python at /x: build the peers' venv"),
    ]
    results.errors = [{"system": "rq", "experiment": "system", "case": "all", "error": "no Python"}]
    json_path, csv_path = results.write(tmp_path, "bench")
    document = json.loads(json_path.read_text())
    assert set(document) == {"machine", "settings", "systems", "rows", "errors", "details", "started", "schema"}
    assert document["schema"] == 3
    assert rows_from_dicts(document["rows"]) == results.rows
    with csv_path.open() as f:
        lines = list(csv.DictReader(f))
    assert list(lines[0]) == Row.columns()
    assert lines[0]["runs"] == "1200 1234 1300"
    assert lines[1]["value"] == "" and "peers' venv" in lines[1]["note"]


def test_rounds_merge_to_medians_with_unknown_latencies_as_slowest() -> None:
    def row(value: float | None, unit: str = "ms", setting: str = "2p x 8") -> Row:
        metric = "to_start_p99" if unit == "ms" else "tasks_per_s"
        if unit == "ms":
            return Row("huey", "latency", "1000/s", metric, value, unit, setting)
        return Row("huey", "drain", "io: best 2-core", metric, value, unit, setting)  # the best setting may differ

    merged = merge_rounds([[row(2.0), row(100.0, "tasks/s")], [row(None), row(None, "tasks/s", "4p x 1")],
                           [row(3.0), row(300.0, "tasks/s")]])  # fmt: skip
    latency, drain = merged
    assert latency.value == 3.0 and latency.runs == [2.0, 3.0]  # None counts as slower than any
    assert drain.value == 200.0 and drain.setting == "2p x 8 / 4p x 1"  # a failed round is left out
    assert merge_rounds([[row(None)], [row(None)], [row(1.0)]])[0].value is None


# -- the recorder ------------------------------------------------------------------


def test_recorder_counts_edges_and_samples(redis_url: str) -> None:
    rec = recorder.Recorder(redis_url, direct=True)
    now = time.time()
    rec.done(now - 0.5, 0.0)
    rec.done(now - 0.2, now - 0.3)
    with redis.Redis.from_url(redis_url) as client:
        done, window = recorder.progress(client)
        assert done == 2
        assert window is not None
        assert window[0] == pytest.approx(now - 0.5, abs=1e-3) and window[1] >= now
        (sample,) = recorder.samples(client)
        assert sample.to_start_ms == pytest.approx(100, abs=0.01)
        recorder.reset(client)
        assert recorder.progress(client) == (0, None)


# -- taskq end to end ------------------------------------------------------------------


class _OneSetting:
    one_process: ClassVar[tuple[WorkerSetting, ...]] = (WorkerSetting(1, 20),)
    two_core: ClassVar[tuple[WorkerSetting, ...]] = ()
    default_one = WorkerSetting(1, 20)


def _small_taskq(system: str, url: str) -> Any:
    from taskq_bench.systems.taskq import TaskqAdapter

    return type("SmallTaskq", (_OneSetting, TaskqAdapter), {})(url)


def test_taskq_adapter_drains_and_measures_latency(redis_url: str, tmp_path: Path) -> None:
    suite = replace(SUITES["smoke"], drain_count=200, rates=(100.0,), latency_s=0.5, latency_min_samples=50,
                    drain_workloads=("noop",))  # fmt: skip
    document = run_to_document("taskq", redis_url, suite, ["drain", "latency"], tmp_path, _small_taskq)
    assert document["errors"] == []
    rows = {(r["experiment"], r["case"], r["metric"]): r for r in document["rows"]}
    drain = rows[("drain", "1 process", "tasks_per_s")]
    assert drain["value"] > 0 and drain["setting"] == "1p x 20"
    assert rows[("drain", "noop", "tasks_per_s")]["note"] == ""  # all 200 done, not partial
    (latency,) = document["details"]["latency"]
    assert latency["count"] == 50 and latency["to_start_ms"]["unfinished"] == 0
    p50, p99 = latency["to_start_ms"]["p50"], latency["to_start_ms"]["p99"]
    assert 0 < p50 <= p99 < 5000
    assert latency["to_finish_ms"]["p50"] >= p50
    assert document["info"]["version"]


# -- peers: one smoke run each, in their own virtualenvs ------------------------------------


def _smoke(system: str, out: Path) -> subprocess.Popen[str]:
    server = EmbeddedServer(kind="redis-server").start()
    _servers.append(server)
    argv = [python_for(system), "-m", "taskq_bench.system_run", "--system", system, "--url", server.url,
            "--suite", "smoke", "--experiments", "enqueue,drain", "--out", str(out / f"{system}.json")]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


_servers: list[EmbeddedServer] = []


@pytest.fixture(scope="module")
def peer_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, subprocess.Popen[str]]]]:
    """Every available peer's smoke run, started at once (they wait on I/O and start-up)."""
    out = tmp_path_factory.mktemp("peers")
    runs = {peer: _smoke(peer, out) for peer in PEERS if Path(python_for(peer)).exists()}
    yield out, runs
    for proc in runs.values():
        if proc.poll() is None:
            proc.kill()
    for server in _servers:
        server.stop()


@pytest.mark.parametrize("peer", PEERS)
def test_peer_adapter_smoke(peer: str, peer_runs: tuple[Path, dict[str, subprocess.Popen[str]]]) -> None:
    if not Path(python_for(peer)).exists():
        pytest.skip(f"no peer virtualenv at {python_for(peer)}: run `bash benchmarks/setup_peers.sh`")
    out, runs = peer_runs
    _, err = runs[peer].communicate(timeout=120)
    assert runs[peer].returncode == 0, err[-2000:]
    document = json.loads((out / f"{peer}.json").read_text())
    assert document["errors"] == [], document["errors"]
    rows = {(r["experiment"], r["case"]): r["value"] for r in document["rows"] if r["metric"] == "tasks_per_s"}
    assert rows[("enqueue", "single, 1 producer")] > 0
    assert rows[("drain", "io: default 1 process")] > 0
    assert not math.isnan(rows[("drain", "io: default 1 process")])


# -- `taskq bench`: the command line over taskq_bench.run------------------------------------


def _taskq_bench(*argv: str, venv_dir: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "taskq.cli", *argv, "--venv-dir", str(venv_dir)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def _peer_venvs_where_rq_fails(root: Path) -> Path:
    """A venv directory where the peers' Python exits with an error (rq, and the other peers of
    ``.venv-bench``) and taskiq's does not exist."""
    python = root / ".venv-bench" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named rq' >&2\nexit 3\n")
    python.chmod(0o755)
    return root


def _only_json(out: Path) -> dict[str, Any]:
    (path,) = out.glob("bench-smoke-*.json")
    assert path.with_suffix(".csv").exists() and path.with_suffix(".md").exists()
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def test_taskq_bench_smoke_run_writes_sane_figures_and_reports_peers_that_cannot_run(tmp_path: Path) -> None:
    venvs, out = _peer_venvs_where_rq_fails(tmp_path / "venvs"), tmp_path / "out"
    done = _taskq_bench("bench", "--suite", "smoke", "--systems", "taskq,rq,taskiq", "--out", str(out),
                        venv_dir=venvs)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    document = _only_json(out)
    assert document["settings"]["command"].startswith("taskq bench --suite smoke --systems taskq,rq,taskiq")
    assert document["machine"]["redis_server"]["used"] == "a private redis-server per system"
    assert document["machine"]["cpu_count"] >= 1 and document["machine"]["redis_server"]["redis_version"]
    rows = {(r["system"], r["experiment"], r["case"], r["metric"]): r for r in document["rows"]}
    # taskq: every figure present and sane
    for case in ("single, 1 producer", "bulk, 1 producer"):
        assert rows[("taskq", "enqueue", case, "tasks_per_s")]["value"] > 0
    assert rows[("taskq", "drain", "io: default 1 process", "tasks_per_s")]["value"] > 0
    start = [rows[("taskq", "latency", "50/s", f"to_start_{q}")]["value"] for q in ("p50", "p90", "p99", "p999", "max")]
    assert all(v is not None for v in start), start
    assert start[0] > 0 and start == sorted(start)  # every task done, percentiles in order
    assert rows[("taskq", "latency", "50/s", "to_finish_p50")]["value"] >= start[0]
    assert not [e for e in document["errors"] if e["system"] == "taskq"]
    (latency,) = document["details"]["taskq"][0]["latency"]
    assert latency["count"] == 25 and latency["to_start_cdf"][-1][1] == 1.0
    # peers that cannot run: a row each with the reason, and an error each
    rq, taskiq = rows[("rq", "system", "all", "ran")], rows[("taskiq", "system", "all", "ran")]
    assert rq["value"] is None and "No module named rq" in rq["note"]
    assert taskiq["value"] is None and "no Python at" in taskiq["note"] and "setup_peers.sh" in taskiq["note"]
    assert {e["system"] for e in document["errors"]} == {"rq", "taskiq"}
    errors_printed = done.stdout.split("Errors:", 1)[1]
    assert "- rq system all" in errors_printed and "- taskiq system all" in errors_printed


def test_taskq_bench_on_a_given_url_flushes_it_and_says_so(redis_url: str, tmp_path: Path) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.set("someone:else", "data")
        out = tmp_path / "out"  # given relative to where the command runs, not to the repository
        done = _taskq_bench("bench", "--suite", "smoke", "--systems", "taskq", "--experiments", "enqueue",
                            "--out", "out", "--url", redis_url, venv_dir=tmp_path, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "WARNING" in done.stderr and "FLUSHALL" in done.stderr and redis_url in done.stderr
        assert client.get("someone:else") is None
    document = _only_json(out)
    assert document["machine"]["redis_server"]["used"] == redis_url
    assert {r["experiment"] for r in document["rows"]} == {"enqueue"}
    assert all(r["value"] > 0 for r in document["rows"] if r["note"] != "no bulk enqueue API")


def _taskq(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``taskq`` command (its plug-ins are found through their entry points)."""
    command = [sys.executable, "-m", "taskq.cli", *argv]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def test_taskq_bench_never_uses_the_environment_url(tmp_path: Path) -> None:
    # TASKQ_REDIS_URL would fail if it were used; with no redis-server on PATH: the typed error, nothing written
    env = dict(os.environ, TASKQ_REDIS_URL="redis://127.0.0.1:1/0", PATH=str(tmp_path))
    result = _taskq("bench", "--suite", "smoke", "--systems", "taskq", "--out", str(tmp_path / "o"), env=env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "redis-server" in result.stderr and "--url" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--systems", "taskq,celeri"], "unknown systems: celeri"),
        (["--experiments", "drain,speed"], "unknown experiments: speed"),
        (["--suite", "huge"], "unknown suite 'huge'"),
        (["--rounds", "0"], "rounds must be at least 1"),
        (["--url", "localhost:6379"], "redis://"),
    ],
)
def test_taskq_bench_rejects_bad_options_before_running(argv: list[str], message: str, tmp_path: Path) -> None:
    result = _taskq("bench", *argv, "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "o").exists()


# -- plots.problems: what the notebooks assert on a results file -----------------------------


def _document_with(taskq_p99: float | None, drop_rq: bool = False) -> dict[str, Any]:
    rows = [Row("taskq", "drain", "1 process", "tasks_per_s", 5000.0, "tasks/s"),
            Row("rq", "system", "all", "ran", None, "", note="no Python at /x/bin/python")]  # fmt: skip
    values = {"p50": 1.0, "p90": 2.0, "p99": taskq_p99, "p999": None if taskq_p99 is None else 9.0, "max": None}
    rows += [Row("taskq", "latency", "200/s", f"to_start_{q}", v, "ms") for q, v in values.items()]
    if drop_rq:
        rows = [r for r in rows if r.system != "rq"]
    cdf = [[1.0, 0.5], [2.0, 0.9], [9.0, 0.999]]
    run = {"rate_per_s": 200.0, "to_start_cdf": cdf, "to_start_ms": {"unfinished": 1}}
    return {"settings": {"systems": ["taskq", "rq"]}, "rows": [asdict(r) for r in rows],
            "systems": {"taskq": {"rounds": [{"version": "0.1"}]}, "rq": {"rounds": [{"error": "no Python at /x"}]}},
            "details": {"taskq": [{"latency": [run]}]}}  # fmt: skip


def test_plots_problems_passes_a_sound_document_and_names_each_fault() -> None:
    pytest.importorskip("pandas")
    from taskq_bench import plots

    sound = _document_with(taskq_p99=5.0)
    assert plots.problems(sound) == []
    assert plots.system_status(sound)["status"].to_dict() == {"taskq": "ran", "rq": plots.NOT_INSTALLED}
    assert plots.latency_rates(sound) == [200.0]
    unknown_tail = _document_with(taskq_p99=None)  # P99 beyond the run: fine, as long as P50, P90 come first
    assert plots.problems(unknown_tail) == []
    (disordered,) = plots.problems(_document_with(taskq_p99=0.5))
    assert "taskq at 200/s: percentiles not monotone" in disordered
    assert plots.problems(_document_with(taskq_p99=5.0, drop_rq=True)) == ["rq: no row at all (dropped)"]
    falling = _document_with(taskq_p99=5.0)
    falling["details"]["taskq"][0]["latency"][0]["to_start_cdf"] = [[1.0, 0.5], [2.0, 0.4]]
    assert plots.problems(falling) == ["taskq at 200/s: CDF falls"]
    complete = _document_with(taskq_p99=5.0)
    complete["details"]["taskq"][0]["latency"][0]["to_start_ms"]["unfinished"] = 0
    assert plots.problems(complete) == ["taskq at 200/s: CDF ends at 0.999, not 1"]


def test_throughput_plot_of_a_run_without_drain_says_so() -> None:
    """A run of some experiments only (``--experiments enqueue,latency``) is still drawn: the
    drain panel says it was not run (it raised "no numeric data to plot" before)."""
    pytest.importorskip("matplotlib")
    from taskq_bench import plots

    document = _document_with(taskq_p99=5.0)
    document["rows"] = [r for r in document["rows"] if r["experiment"] != "drain"]
    document["rows"].append(asdict(Row("taskq", "enqueue", "single, 1 producer", "tasks_per_s", 4000.0, "tasks/s")))
    figure = plots.plot_throughput(document)
    enqueue_ax, drain_ax = figure.axes[:2]
    assert [t.get_text() for t in drain_ax.texts] == ["no drain experiment in this run"]
    assert enqueue_ax.patches  # the enqueue bars are drawn (rq's is its status label)
    assert "no enqueue experiment in this run" not in [t.get_text() for t in enqueue_ax.texts]


def test_thinned_cdf_keeps_its_shape_and_its_tail() -> None:
    import itertools

    from taskq_bench.results import thin_cdf

    values = [0.01 * 1.01**i for i in range(2000)]  # 0.01 ms .. ~4 s
    cdf = LogHistogram.of(values, lowest=0.01, precision=0.002).cdf()
    thin = thin_cdf([list(p) for p in cdf])
    assert len(thin) < len(cdf) / 3
    assert thin[-1] == list(cdf[-1]) and [p for p in thin if p[1] > 0.99] == [list(p) for p in cdf if p[1] > 0.99]
    for bound, fraction in thin:  # never further than one step from the full CDF at any kept bound
        assert dict(cdf)[bound] == fraction
    fractions = [f for _, f in thin]
    gaps = [b - a for a, b in itertools.pairwise(fractions)]
    assert fractions == sorted(fractions) and max(gaps) <= 0.005 + 1e-3  # each bucket here holds < 0.1 %
