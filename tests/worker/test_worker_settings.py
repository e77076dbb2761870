"""A worker's timing settings are checked against each other when it is built: a typed
:class:`taskq.InvalidOption`, and one error line from the ``taskq worker`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import taskq
from taskq.worker import Worker
from taskq.worker_defaults import DEFAULT_ASYNC_CONCURRENCY, DEFAULT_SYNC_CONCURRENCY, loop_factory


@pytest.mark.parametrize("heartbeat_s", [0, 0.0, -1, float("nan"), float("inf")])
def test_a_heartbeat_that_is_not_positive_and_finite_is_refused(tq: taskq.TaskQueue, heartbeat_s: float) -> None:
    with pytest.raises(taskq.InvalidOption, match="heartbeat_s"):
        Worker(tq, heartbeat_s=heartbeat_s)


@pytest.mark.parametrize(("lease_s", "heartbeat_s"), [(1, 5), (1, 0.51), (30, 20)])
def test_a_heartbeat_slower_than_half_the_lease_is_refused(
    tq: taskq.TaskQueue, lease_s: float, heartbeat_s: float
) -> None:
    with pytest.raises(taskq.InvalidOption, match=r"at most lease_s / 2") as info:
        Worker(tq, lease_s=lease_s, heartbeat_s=heartbeat_s)
    assert "lose its lease" in str(info.value)


def test_the_default_heartbeat_follows_the_lease(tq: taskq.TaskQueue) -> None:
    assert Worker(tq).heartbeat_s == pytest.approx(10.0)
    assert Worker(tq, lease_s=1).heartbeat_s == pytest.approx(1 / 3)
    assert Worker(tq, lease_s=1, heartbeat_s=0.5).heartbeat_s == 0.5


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--heartbeat-s", "0"], "heartbeat_s must be finite and > 0"),
        (["--lease-s", "1", "--heartbeat-s", "5"], "at most lease_s / 2"),
        (["--lease-s", "1", "--heartbeat-s", "5", "--processes", "2"], "at most lease_s / 2"),
    ],
)
def test_the_worker_command_reports_bad_timing_as_one_line(
    redis_url: str, tmp_path: Path, argv: list[str], fragment: str
) -> None:
    (tmp_path / "myapp.py").write_text("import taskq\n\ntq = taskq.TaskQueue()\n")
    taskq_script = str(Path(sys.executable).parent / "taskq")
    done = subprocess.run(
        [taskq_script, "worker", "myapp:tq", *argv],
        capture_output=True,
        text=True,
        env=dict(os.environ, TASKQ_REDIS_URL=redis_url, COLUMNS="80"),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], done.stderr


def test_the_default_concurrency_is_high_for_async_tasks_only(redis_url: str) -> None:
    all_async = taskq.TaskQueue(redis_url)

    @all_async.task
    async def fetch() -> None: ...

    mixed = taskq.TaskQueue(redis_url)

    @mixed.task
    async def fetch_too() -> None: ...

    @mixed.task
    def resize() -> None: ...

    empty = taskq.TaskQueue(redis_url)
    try:
        assert Worker(all_async).concurrency == DEFAULT_ASYNC_CONCURRENCY == 100
        assert Worker(mixed).concurrency == DEFAULT_SYNC_CONCURRENCY == 10
        assert Worker(mixed)._threads._max_workers == 10  # a thread per sync task running, no more
        assert Worker(empty).concurrency == DEFAULT_SYNC_CONCURRENCY
        assert Worker(all_async, concurrency=7).concurrency == 7  # given: kept
    finally:
        for client in (all_async, mixed, empty):
            client.close()


def test_the_event_loop_choice() -> None:
    assert loop_factory("asyncio") is None
    auto = loop_factory("auto")
    try:
        import uvloop
    except ImportError:
        assert auto is None
    else:
        assert auto is uvloop.new_event_loop and loop_factory("uvloop") is uvloop.new_event_loop
    with pytest.raises(taskq.InvalidOption, match="event_loop must be one of"):
        loop_factory("trio")


def test_the_worker_command_refuses_an_unknown_loop(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text("import taskq\n\ntq = taskq.TaskQueue()\n")
    taskq_script = str(Path(sys.executable).parent / "taskq")
    done = subprocess.run(
        [taskq_script, "worker", "myapp:tq", "--loop", "trio", "--processes", "2"],
        capture_output=True,
        text=True,
        env=dict(os.environ, TASKQ_REDIS_URL=redis_url, COLUMNS="80"),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1 and "event_loop must be one of" in done.stderr, done.stderr


def test_a_pool_passes_the_concurrency_only_when_given() -> None:
    from taskq.cli.logs import LogFormat, LogLevel
    from taskq.cli.worker import _pool_options

    unset = _pool_options(None, 30.0, 10.0, LogLevel.info, LogFormat.text, None, None, None, "uvloop")
    assert "--concurrency" not in unset and unset[unset.index("--loop") + 1] == "uvloop"
    given = _pool_options(5, 30.0, 10.0, LogLevel.info, LogFormat.text, None, None)
    assert given[given.index("--concurrency") + 1] == "5"
