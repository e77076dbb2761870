"""Fault injection against real worker processes (``taskq worker``), not in-process workers.

Each task records every execution from inside itself (tests/apps/faultapp.py): ``HINCRBY
runs <n> 1`` and ``RPUSH ran <n>:<pid>``, so runs are counted even for processes that were
killed mid-task. Waits are generous and bounded; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from apps.procs import REPO, Workers, alive, wait_until

import taskq
from taskq.task import TaskStatus


@pytest.fixture
def procs(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(redis_url, tmp_path)
    yield started
    started.cleanup()


def runs_of(rc: redis.Redis) -> dict[int, list[int]]:
    """Task number -> the pids that ran it, in the order the runs started."""
    out: dict[int, list[int]] = {}
    for entry in rc.lrange("ran", 0, -1):  # decoded: rc has decode_responses
        n, pid = str(entry).split(":")
        out.setdefault(int(n), []).append(int(pid))
    return out


def statuses(tq: taskq.TaskQueue, ids: list[str]) -> dict[str, TaskStatus | None]:
    """Each task's status (None: its record is gone), read in one pipelined round trip."""
    tasks = tq._exec.run(tq.ops.get_many(ids))
    return {i: None if t is None else t.status for i, t in zip(ids, tasks, strict=True)}


def busy_worker_pids(tq: taskq.TaskQueue) -> set[int]:
    """Pids of registered workers whose last heartbeat listed running tasks."""
    return {w.pid for w in tq.workers() if w.health is not taskq.WorkerHealth.GONE and w.current and w.pid}


def enqueue_hold(tq: taskq.TaskQueue, name: str, n: int, seconds: float, **options: Any) -> taskq.TaskHandle:
    return tq.enqueue(name, [n, seconds], **options)


# ---------------------------------------------------------------------------
# a. SIGKILL under load, many times


KILL_TASKS = 1000
KILLS = 8


def test_kill_9_under_load_loses_nothing(tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers) -> None:
    rng = random.Random(20240611)
    options = ("--concurrency", "2", "--lease-s", "1", "--grace-s", "0.5")
    live = {p.pid: p for p in (procs.start(*options) for _ in range(3))}
    requests = [
        {
            "name": "fault.work",
            "args": [n],
            "kwargs": {"hold_ms": rng.randint(10, 50)},
            "priority": rng.randint(1, 10),
            "max_retries": 50,  # many kills may hit one task; none may make it dead
        }
        for n in range(KILL_TASKS)
    ]
    t0 = time.monotonic()
    ids = [h.id for h in tq.enqueue_many(requests)]
    killed: set[int] = set()

    def drained() -> bool:
        s = tq.stats()
        return s.queued + s.running + s.scheduled == 0

    deadline = time.monotonic() + 45
    while len(killed) < KILLS and not drained() and time.monotonic() < deadline:
        time.sleep(0.3)
        busy = sorted(busy_worker_pids(tq) & set(live))
        if not busy:
            continue
        victim = live.pop(rng.choice(busy))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed.add(victim.pid)
        replacement = procs.start(*options, wait_ready=False)
        live[replacement.pid] = replacement

    wait_until(drained, timeout_s=40, what="every task to finish after the kills")
    elapsed = time.monotonic() - t0
    final = statuses(tq, ids)
    lost = [i for i, status in final.items() if status is not TaskStatus.SUCCEEDED]
    runs = runs_of(rc)
    never_ran = [n for n in range(KILL_TASKS) if n not in runs]
    duplicated = {n: pids for n, pids in runs.items() if len(pids) > 1}
    # A task runs again only because an earlier run was on a worker that was killed:
    # every run but the last (the one that succeeded) must be on a killed pid.
    unexplained = {n: pids for n, pids in duplicated.items() if not set(pids[:-1]) <= killed}
    counters = tq.stats().counters
    counts = {
        "tasks": KILL_TASKS,
        "kills": len(killed),
        "lost": len(lost),
        "never_ran": len(never_ran),
        "total_runs": sum(len(p) for p in runs.values()),
        "duplicates": sum(len(p) - 1 for p in duplicated.values()),
        "tasks_run_more_than_once": len(duplicated),
        "unexplained_duplicates": len(unexplained),
        "requeued_by_reaper": counters.get("requeued", 0),
        "succeeded_counter": counters.get("succeeded", 0),
        "seconds": round(elapsed, 1),
    }
    print(f"\nkill -9 fault counts: {json.dumps(counts)}")
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "fault_counts.json").write_text(json.dumps(counts, indent=2) + "\n")

    assert len(killed) >= 6, f"the load drained before enough kills: {counts}"
    assert lost == [], f"{len(lost)} tasks not succeeded: {[(i, final[i]) for i in lost[:10]]}"
    assert never_ran == []
    assert unexplained == {}, f"duplicates not explained by a kill (killed {sorted(killed)}): {unexplained}"
    assert counters.get("succeeded") == KILL_TASKS  # the fence: no task completed twice
    assert tq.stats().dead == 0


# ---------------------------------------------------------------------------
# b. no faults: exactly once


def test_several_worker_processes_run_each_task_exactly_once(
    tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers
) -> None:
    workers = [procs.start("--concurrency", "4", "--lease-s", "5") for _ in range(3)]
    total = 400
    rng = random.Random(7)
    requests = [
        {"name": "fault.work", "args": [n], "kwargs": {"hold_ms": 10}, "priority": rng.randint(1, 10)}
        for n in range(total)
    ]
    ids = [h.id for h in tq.enqueue_many(requests)]
    wait_until(lambda: tq.stats().counters.get("succeeded", 0) == total, timeout_s=60, what="all tasks")
    counts = {int(k): int(v) for k, v in rc.hgetall("runs").items()}
    assert sorted(counts) == list(range(total))
    assert set(counts.values()) == {1}
    assert set(statuses(tq, ids).values()) == {TaskStatus.SUCCEEDED}
    pids = {pid for pids in runs_of(rc).values() for pid in pids}
    assert pids <= {w.pid for w in workers}
    counters = tq.stats().counters
    assert counters.get("started") == total and "requeued" not in counters


# ---------------------------------------------------------------------------
# c, d. graceful shutdown by signal


def _start_long_tasks(tq: taskq.TaskQueue, rc: redis.Redis, n: int) -> list[str]:
    handles = [enqueue_hold(tq, "fault.hold", i, 60.0) for i in range(n)]
    wait_until(lambda: rc.hlen("runs") == n and tq.stats().running == n, what="the long tasks to start")
    return [h.id for h in handles]


def _assert_released(tq: taskq.TaskQueue, ids: list[str]) -> None:
    for task_id in ids:
        task = tq.get(task_id)
        assert task.status is TaskStatus.QUEUED, task
        assert task.attempts == 0  # a release spends no attempt
    stats = tq.stats()
    assert stats.queued == len(ids) and stats.running == 0
    assert stats.counters.get("released") == len(ids)
    assert [w for w in tq.workers() if w.health is not taskq.WorkerHealth.GONE] == []  # deregistered


def test_sigterm_releases_running_tasks_and_exits_0(tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers) -> None:
    worker = procs.start("--concurrency", "4", "--lease-s", "30", "--grace-s", "0.5")
    ids = _start_long_tasks(tq, rc, 3)
    worker.send_signal(signal.SIGTERM)
    assert procs.wait_exit(worker, timeout_s=15) == 0
    # The 30 s leases cannot have expired: the tasks are back because they were released.
    _assert_released(tq, ids)
    assert "released 3 running tasks" in procs.log(worker)


def test_second_signal_skips_the_grace_period(tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers) -> None:
    worker = procs.start("--concurrency", "4", "--lease-s", "30", "--grace-s", "600")
    ids = _start_long_tasks(tq, rc, 2)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert worker.poll() is None  # the first signal waits for the (600 s) grace period
    worker.send_signal(signal.SIGINT)
    assert procs.wait_exit(worker, timeout_s=20) == 0
    _assert_released(tq, ids)


def test_sigterm_exits_even_while_a_sync_task_runs(tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers) -> None:
    worker = procs.start("--concurrency", "2", "--lease-s", "30", "--grace-s", "0.5")
    handle = enqueue_hold(tq, "fault.block", 0, 20.0)
    wait_until(lambda: rc.hlen("runs") == 1, what="the sync task to start")
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: tq.get(handle.id).status is TaskStatus.QUEUED, timeout_s=15, what="the release")
    assert procs.wait_exit(worker, timeout_s=8) == 0


# ---------------------------------------------------------------------------
# e. SIGKILL on the last attempt: dead by lease expiry


def test_killed_worker_last_attempt_goes_dead_with_lease_expired(
    tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers
) -> None:
    doomed = procs.start("--concurrency", "1", "--lease-s", "1")
    handle = enqueue_hold(tq, "fault.once", 0, 30.0, max_retries=0)
    wait_until(lambda: rc.hlen("runs") == 1, what="the task to start")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    reaper = procs.start("--concurrency", "1", "--lease-s", "1")
    wait_until(lambda: tq.get(handle.id).status is TaskStatus.DEAD, what="the reaper to dead-letter the task")
    task = tq.get(handle.id)
    assert task.error_type == "LeaseExpired"
    assert f"-{doomed.pid}-" in (task.error or "")  # names the worker that died
    assert task.attempts == 1
    assert runs_of(rc) == {0: [doomed.pid]}  # the reaper's process never ran it
    assert [t.id for t in tq.dead_letters().list()] == [handle.id]
    assert tq.stats().counters.get("dead") == 1
    assert reaper.poll() is None


# ---------------------------------------------------------------------------
# f. a frozen worker's late completion is refused


def test_frozen_worker_late_completion_is_refused(tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers) -> None:
    frozen = procs.start("--concurrency", "1", "--lease-s", "1")
    handle = enqueue_hold(tq, "fault.block", 0, 1.5)
    wait_until(lambda: rc.hlen("runs") == 1, what="the task to start")
    frozen.send_signal(signal.SIGSTOP)
    try:
        second = procs.start("--concurrency", "1", "--lease-s", "1")
        assert handle.result(timeout_s=30) == second.pid
        assert runs_of(rc) == {0: [frozen.pid, second.pid]}
    finally:
        frozen.send_signal(signal.SIGCONT)

    # Thawed, the first worker's attempt ends: its completion is refused (stale token), or
    # its heartbeat learns first that the lease is gone and drops the attempt.
    def attempt_ended() -> bool:
        log = procs.log(frozen)
        overwritten = tq.get(handle.id).result != second.pid
        return "another attempt owns it" in log or "lease lost" in log or overwritten

    wait_until(attempt_ended, what="the thawed worker to learn it lost the lease")
    task = tq.get(handle.id)
    assert task.status is TaskStatus.SUCCEEDED and task.result == second.pid
    assert task.attempts == 2
    assert runs_of(rc) == {0: [frozen.pid, second.pid]}
    assert tq.stats().counters.get("succeeded") == 1
    frozen.send_signal(signal.SIGTERM)
    assert procs.wait_exit(frozen, timeout_s=15) == 0
    assert alive(second.pid)
