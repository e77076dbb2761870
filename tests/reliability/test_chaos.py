"""``taskq chaos`` (issue 17), the short version: a few hundred tasks on 2 workers with one
fault of each kind. Nothing may be lost, and the report must agree with what the run left
in Redis: its AOF is reopened after the run and counted again independently."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.procs import REPO, wait_until

import taskq
from taskq.chaos import (
    FAULT_KINDS,
    QUEUE,
    RUNS_KEY,
    TASK_NAME,
    AofServer,
    ChaosReport,
    ChaosRun,
    ChaosSettings,
    Fault,
    run_chaos,
)


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ChaosReport, Path]:
    workdir = tmp_path_factory.mktemp("chaos")
    settings = ChaosSettings(workers=2, tasks=300, rate=60, faults=4, seed=17, lease_s=1.0, drain_timeout_s=60)
    return run_chaos(settings, workdir=workdir), workdir


@pytest.fixture(scope="module")
def reopened(chaos_run: tuple[ChaosReport, Path]) -> Iterator[redis.Redis]:
    """The run's Redis, started again on its AOF after the run."""
    server = AofServer(chaos_run[1])
    server.start()
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def test_nothing_is_lost_under_one_fault_of_each_kind(chaos_run: tuple[ChaosReport, Path]) -> None:
    report, _ = chaos_run
    assert sorted(f.kind for f in report.faults) == sorted(FAULT_KINDS)
    assert report.ok and report.lost == 0 and report.dead == 0 and report.unfinished == 0
    assert report.submitted == report.completed == 300
    assert report.seed == 17
    assert 0 < report.run_log_bytes < report.memory_after_bytes and report.memory_before_bytes > 0
    # a completion followed at least the faults made while work was still queued
    assert report.longest_recovery_s is not None and report.longest_recovery_s < 60


def test_the_report_agrees_with_redis(chaos_run: tuple[ChaosReport, Path], reopened: redis.Redis) -> None:
    report, _ = chaos_run
    runs = reopened.hgetall(RUNS_KEY)
    assert len(runs) == report.runs >= report.submitted
    per_task = Counter(json.loads(field)[0] for field in runs)
    assert len(per_task) == report.submitted  # every task's body ran at least once
    assert sum(1 for count in per_task.values() if count > 1) == report.duplicated
    assert report.runs - report.submitted >= report.duplicated  # each duplicate is an extra run
    with taskq.TaskQueue(f"redis://127.0.0.1:{reopened.connection_pool.connection_kwargs['port']}/0") as tq:
        counts = tq.stats(QUEUE)
        assert counts.pending == 0 and counts.dead == report.dead == 0
        statuses = Counter(tq.get(task_id).status for task_id in per_task)
    assert statuses == {taskq.TaskStatus.SUCCEEDED: report.completed}
    # each recorded run is of a task n in 0..299, and every n was submitted exactly once
    numbers = {json.loads(value)["n"] for value in runs.values()}
    assert numbers == set(range(300))


def test_the_cli_prints_json_and_refuses_bad_options(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "taskq.cli", "chaos"]
    done = subprocess.run(
        [*cmd, "--workers", "1", "--tasks", "20", "--rate", "40", "--faults", "0", "--seed", "5", "--json"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["submitted"], data["completed"], data["lost"], data["seed"], data["ok"]) == (20, 20, 0, 5, True)
    bad = subprocess.run([*cmd, "--workers", "0"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_bad_settings_are_typed_errors() -> None:
    with pytest.raises(taskq.InvalidOption, match="rate"):
        ChaosSettings(rate=0).check()
    with pytest.raises(taskq.InvalidOption, match="seed"):
        ChaosSettings(seed="x").check()  # type: ignore[arg-type]


def test_the_report_counts_what_did_not_succeed(
    tq: taskq.TaskQueue, rc: redis.Redis, redis_server: taskq.EmbeddedServer, tmp_path: Path
) -> None:
    """A loss is counted and flips ``ok`` (the exit code): a dead task, a task still waiting."""

    @tq.task(name=TASK_NAME, queue=QUEUE, max_retries=0)
    def work(n: int, seconds: float = 0.0) -> int:
        if n == 1:
            raise RuntimeError("boom")
        return n

    fault_ms = int(time.time() * 1000)
    ids = [work.enqueue(0).id, work.enqueue(1).id, tq.enqueue(TASK_NAME, args=[2], queue=QUEUE, delay_s=3600).id]
    with tq.start_worker(queues=[QUEUE]):
        wait_until(lambda: tq.get(ids[0]).status == "succeeded" and tq.get(ids[1]).status == "dead")
    rc.hset(RUNS_KEY, mapping={json.dumps([ids[0], "1"]): "{}", json.dumps([ids[0], "2"]): "{}"})
    run = ChaosRun(ChaosSettings(), tmp_path)
    run.server.port = redis_server.port  # count on the test server
    run.faults = [Fault("pause", "worker 1", 0.0, fault_ms)]
    report = run.report(tq, ids, memory_before=1)
    assert (report.submitted, report.completed, report.lost, report.dead, report.unfinished) == (3, 1, 2, 1, 1)
    assert (report.duplicated, report.runs, report.ok) == (1, 2, False)
    assert report.longest_recovery_s is not None and report.longest_recovery_s >= 0
    assert report.faults[0].recovery_s == report.longest_recovery_s
