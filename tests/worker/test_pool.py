"""``taskq worker APP --processes N``: a supervisor process keeping N worker processes alive.

Children are found through /proc (or psutil when installed); tasks record the pid that ran
them (tests/apps/faultapp.py). Waits are generous and bounded.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.procs import Workers, alive, children, signal_pid, wait_until

import taskq
import taskq.pool
from taskq.pool import Supervisor

POOL = ("--processes", "3", "--concurrency", "2", "--lease-s", "1", "--grace-s", "0.5")


@pytest.fixture
def procs(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(redis_url, tmp_path)
    yield started
    started.cleanup()


def start_pool(procs: Workers) -> tuple[subprocess.Popen[bytes], list[int]]:
    supervisor = procs.start(*POOL)  # waits until all three children log "serving"
    wait_until(lambda: len(children(supervisor.pid)) == 3, what="three child processes")
    kids = children(supervisor.pid)
    procs.adopted.update(kids)
    return supervisor, kids


def pids_that_ran(rc: redis.Redis) -> set[int]:
    return {int(str(entry).split(":")[1]) for entry in rc.lrange("ran", 0, -1)}


def enqueue_work(tq: taskq.TaskQueue, first: int, count: int, hold_ms: int) -> None:
    tq.enqueue_many(
        [
            {"name": "fault.work", "args": [n], "kwargs": {"hold_ms": hold_ms}, "max_retries": 10}
            for n in range(first, first + count)
        ]
    )


def test_pool_runs_tasks_in_three_processes_and_restarts_a_killed_one(
    tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers
) -> None:
    supervisor, kids = start_pool(procs)
    assert supervisor.pid not in kids
    registered = {w.pid for w in tq.workers() if w.health is not taskq.WorkerHealth.GONE}
    assert registered == set(kids)  # the supervisor itself runs no worker

    enqueue_work(tq, 0, 300, hold_ms=30)
    wait_until(lambda: pids_that_ran(rc) == set(kids), what="tasks to run in all three children")

    victim = kids[0]
    signal_pid(victim, signal.SIGKILL)
    wait_until(lambda: not alive(victim), what="the child to die")
    wait_until(
        lambda: len(children(supervisor.pid)) == 3 and victim not in children(supervisor.pid),
        what="the supervisor to restart the killed child",
    )
    replacement = set(children(supervisor.pid)) - set(kids)
    assert len(replacement) == 1
    procs.adopted.update(replacement)
    assert supervisor.poll() is None

    enqueue_work(tq, 300, 100, hold_ms=10)
    wait_until(lambda: tq.stats().counters.get("succeeded", 0) == 400, what="every task to succeed")
    runs = {int(k) for k in rc.hkeys("runs")}
    assert runs == set(range(400))
    stats = tq.stats()
    assert stats.queued == stats.running == stats.dead == 0
    assert "restarting" in procs.log(supervisor)


def test_sigterm_to_the_supervisor_stops_every_child(tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers) -> None:
    supervisor, kids = start_pool(procs)
    enqueue_work(tq, 0, 30, hold_ms=20)
    wait_until(lambda: tq.stats().counters.get("succeeded", 0) == 30, what="the tasks")
    supervisor.send_signal(signal.SIGTERM)
    assert procs.wait_exit(supervisor, timeout_s=30) == 0
    assert [pid for pid in kids if alive(pid)] == []
    assert [w for w in tq.workers() if w.health is not taskq.WorkerHealth.GONE] == []  # each child deregistered


def test_a_signal_while_a_child_is_being_started_reaches_that_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The supervisor's handler used to pass SIGTERM on to the children it had recorded; one
    # that came inside _spawn (the child forked, not yet in supervisor.children) never reached
    # that child, and the pool waited for it forever.
    ready, stopped = tmp_path / "ready", tmp_path / "stopped"
    child = (
        "import pathlib, signal, sys, time\n"
        f"def stop(*_):\n    pathlib.Path({str(stopped)!r}).write_text('SIGTERM')\n    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        f"pathlib.Path({str(ready)!r}).write_text('ready')\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor([sys.executable, "-c", child], 1)
    real_popen = subprocess.Popen

    def popen_then_signal(*args: object, **kwargs: object) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)  # type: ignore[call-overload]
        wait_until(ready.exists, what="the child to handle SIGTERM")
        supervisor._on_signal(signal.SIGTERM, None)  # the signal, before _spawn records the child
        return proc  # type: ignore[no-any-return]

    monkeypatch.setattr(taskq.pool.subprocess, "Popen", popen_then_signal)
    assert supervisor.run() == 0
    assert stopped.read_text() == "SIGTERM"  # it was told to stop, it did not just run out its sleep


def test_children_die_with_a_killed_supervisor(tq: taskq.TaskQueue, procs: Workers) -> None:
    supervisor, kids = start_pool(procs)
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in kids), timeout_s=15, what="the orphaned children to exit")
