"""current_task().progress(): written by a real worker, rate-limited, fenced, and visible in
tq.get(), the snapshot and the events stream."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from helpers import wait_until

import taskq


def test_progress_is_visible_and_rate_limited(tq: taskq.TaskQueue, rc: redis.Redis, workers: list) -> None:
    release = threading.Event()

    @tq.task
    def crunch(n: int) -> int:
        ctx = taskq.current_task()
        assert ctx is not None
        for i in range(n):  # a tight loop: the worker writes at most one value per 0.5 s
            ctx.progress(i + 1, n, f"step {i + 1}")
        release.wait(10)
        return n

    rc.config_resetstat()
    workers.append(tq.start_worker(queues=["default"]))
    h = crunch.enqueue(20_000)
    wait_until(lambda: (tq.get(h.id).progress or {}).get("done") == 20_000, 10, "the last progress value")
    assert tq.get(h.id).progress == {"done": 20_000, "total": 20_000, "message": "step 20000"}
    (running,) = tq.snapshot(queues=["default"]).queue("default").running_tasks
    assert running.progress == {"done": 20_000, "total": 20_000, "message": "step 20000"}
    stats = rc.info("commandstats")
    calls = sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "fcall"))
    release.set()
    assert h.result(timeout_s=10) == 20_000
    events = [e for e in tq.events(queues=["default"], since="0", follow=False) if e.type == "progress"]
    assert 1 <= len(events) <= 5 and events[-1].progress == {"done": 20_000, "total": 20_000, "message": "step 20000"}
    assert calls < 50  # 20,000 reports, a handful of writes (claim, heartbeat, progress)


def test_the_last_progress_is_written_before_the_outcome(tq: taskq.TaskQueue, workers: list) -> None:
    # The second report falls inside the rate limit's pause; it must not land after the result.
    @tq.task
    def two_steps() -> str:
        ctx = taskq.current_task()
        assert ctx is not None
        ctx.progress(1, 2, "half")
        time.sleep(0.05)  # the first value is being written
        ctx.progress(2, 2, "done")
        return "ok"

    workers.append(tq.start_worker(queues=["default"]))
    for _ in range(3):
        h = two_steps.enqueue()
        assert h.result(timeout_s=10) == "ok"
        assert tq.get(h.id).progress == {"done": 2, "total": 2, "message": "done"}


def test_progress_refuses_bad_values() -> None:
    ctx = taskq.TaskContext("default:00", "default", "t", 1, "w", "tok")
    ctx.progress(1, 2, "ok")  # outside a worker nothing is written
    for bad in (-1, float("nan"), "3", True):
        with pytest.raises(taskq.InvalidOption):
            ctx.progress(bad)  # type: ignore[arg-type]


def test_the_last_value_is_written_even_when_the_task_ends_at_once(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task
    def quick(n: int) -> int:
        ctx = taskq.current_task()
        assert ctx is not None
        for i in range(n):
            ctx.progress(i + 1, n)
        return n

    workers.append(tq.start_worker(queues=["default"]))
    handles = [quick.enqueue(50) for _ in range(5)]
    assert [h.result(timeout_s=10) for h in handles] == [50] * 5
    for h in handles:  # written after the completion, by the same worker for the same attempt
        wait_until(lambda h=h: (tq.get(h.id).progress or {}).get("done") == 50, 10, "the final progress")


def test_the_monitor_widget_shows_a_running_tasks_progress() -> None:
    from taskq_widgets.figures import progress_text, running_row

    assert progress_text(None) == ""
    assert progress_text({"done": 3, "total": 10, "message": "pages"}) == "3/10 pages"
    assert progress_text({"done": 0.5, "total": None, "message": ""}) == "0.5"
    task = taskq.RunningTask("q:1", "t", "w", 1, 5, 0, 1000, 10, 990, {"done": 1, "total": 2, "message": ""})
    assert running_row(task, "q")["progress"] == "1/2"
