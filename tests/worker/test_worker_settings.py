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
