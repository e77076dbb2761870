"""KeyInspector and Leases against a real Redis and real workers: their traitlets follow the
tasks through the queue's sorted sets, heartbeats extend the leases they show, a frozen
worker's lease runs out and the reaper's requeue appears, and the static fallback carries it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
from helpers import wait_until
from taskq_widgets import KeyInspector, Leases

import taskq


@pytest.fixture
def ki(tq: taskq.TaskQueue) -> Iterator[KeyInspector]:
    widget = KeyInspector(tq, "default", interval_s=0.05)
    yield widget
    widget.close()


@pytest.fixture
def leases(tq: taskq.TaskQueue) -> Iterator[Leases]:
    widget = Leases(tq, "default", interval_s=0.05)
    yield widget
    widget.close()


def test_keyinspector_follows_tasks_through_the_sets(
    tq: taskq.TaskQueue, ki: KeyInspector, workers: list[taskq.BackgroundWorker]
) -> None:
    release = threading.Event()

    @tq.task(name="hold")
    def hold() -> str:
        release.wait(30)
        return "ok"

    @tq.task(name="broken", max_retries=0)
    def broken() -> None:
        raise KeyError("nope")

    ki.refresh()
    assert ki.totals == {"queued": 0, "scheduled": 0, "running": 0, "dead": 0} and ki.queued == []
    low = hold.enqueue(priority=2).id
    high = hold.enqueue(priority=9).id
    later = hold.enqueue(delay_s=3600).id
    ki.refresh()
    assert [r["id"] for r in ki.queued] == [high, low]
    assert [r["priority"] for r in ki.queued] == [9, 2] and ki.queued[0]["score"] < ki.queued[1]["score"]
    assert [r["id"] for r in ki.scheduled] == [later] and ki.aging_s is None
    assert sorted(ki.changed["queued"]) == sorted([high, low]) and ki.changed["scheduled"] == [later]
    ki.refresh()
    assert ki.changed == {"queued": [], "running": [], "scheduled": [], "dead": []}  # nothing moved

    worker = tq.start_worker(concurrency=1, lease_s=30, heartbeat_s=0.1)
    workers.append(worker)
    wait_until(lambda: ki.refresh() and ki.totals["running"] == 1, what="the first task to run")
    (lease,) = ki.running
    assert (lease["id"], lease["worker"], lease["attempt"]) == (high, worker.worker.id, 1)
    assert [r["id"] for r in ki.queued] == [low]
    first_deadline = lease["deadline_ms"]
    wait_until(lambda: ki.refresh() and ki.running[0]["deadline_ms"] > first_deadline, what="a heartbeat")
    assert ki.changed["running"] == [high]  # a moved deadline is a change

    broken.enqueue()
    release.set()
    # broken (priority 5) runs before low (2): dead can reach 1 while low is still to run
    drained = {"queued": 0, "running": 0, "dead": 1}
    wait_until(lambda: ki.refresh() and all(ki.totals[k] == n for k, n in drained.items()), what="the queue drained")
    (dead,) = ki.dead
    assert (dead["name"], dead["attempts"], dead["error_type"]) == ("broken", 1, "KeyError")
    assert ki.totals == {"queued": 0, "scheduled": 1, "running": 0, "dead": 1}

    html = ki._repr_html_()
    assert 'class="taskq-keyinspector-static"' in html and dead["id"] in html and later in html
    assert repr(ki) == "<KeyInspector queue='default' queued=0 scheduled=1 running=0 dead=1>"


def test_keyinspector_shows_the_aging_score(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("aged", aging_s=0.05)
    old = tq.enqueue("t", force=True, queue="aged", priority=1).id
    time.sleep(0.5)  # ten aging windows: the old task now ranks above a fresh priority 10
    new = tq.enqueue("t", force=True, queue="aged", priority=10).id
    widget = KeyInspector(tq, "aged")
    try:
        widget.refresh()
        assert widget.aging_s == pytest.approx(0.05)
        assert [r["id"] for r in widget.queued] == [old, new]
        assert widget.queued[0]["effective_priority"] > widget.queued[1]["effective_priority"]
    finally:
        widget.close()


def test_keyinspector_polls_in_its_thread(tq: taskq.TaskQueue, ki: KeyInspector) -> None:
    ki.start()
    assert ki.polling and ki.thread_alive
    tq.enqueue("t", force=True, priority=7)
    wait_until(lambda: ki.totals.get("queued") == 1, what="the poller to see the task")
    ki.stop()
    assert not ki.thread_alive and not ki.polling
    ki.close()
    with pytest.raises(taskq.InvalidOption):
        ki.start()


def test_bad_arguments_are_typed_errors(tq: taskq.TaskQueue) -> None:
    with pytest.raises(taskq.InvalidQueueName):
        KeyInspector(tq, "no{braces}")
    with pytest.raises(taskq.InvalidOption):
        Leases(tq, "default", limit=0)
    with pytest.raises(taskq.InvalidOption):
        Leases(tq, "default", interval_s=0)
    with pytest.raises(taskq.InvalidOption):
        Leases(tq, "default", log_limit=-1)


def test_leases_count_heartbeats_and_show_the_reaper_taking_a_frozen_lease_back(
    tq: taskq.TaskQueue, leases: Leases, workers: list[taskq.BackgroundWorker], caplog: pytest.LogCaptureFixture
) -> None:
    thaw = threading.Event()

    @tq.task(name="freeze", max_retries=3)
    async def freeze() -> str:
        ctx = taskq.current_task()
        assert ctx is not None
        if ctx.attempt == 1:
            thaw.wait(30)  # blocks this worker's whole event loop: no heartbeat goes out
        return ctx.worker_id

    leases.refresh()
    assert leases.leases == [] and leases.events == []
    handle = freeze.enqueue()
    frozen = tq.start_worker(concurrency=1, lease_s=1.5, heartbeat_s=0.2, maintenance_s=0.2)
    workers.append(frozen)
    try:
        wait_until(lambda: leases.refresh() and leases.running_total == 1, what="the task to start")
        (lease,) = leases.leases
        assert (lease["id"], lease["worker"], lease["attempt"], lease["lease_ms"]) == (
            handle.id,
            frozen.worker.id,
            1,
            1500,
        )
        # the frozen worker sends no heartbeat: the lease only runs down
        wait_until(lambda: leases.refresh() and leases.leases[0]["lease_left_ms"] < 0, what="the lease to run out")
        assert leases.extensions == 0 and leases.leases[0]["extensions"] == 0
        with caplog.at_level(logging.WARNING, logger="taskq.worker"):
            healthy = tq.start_worker(concurrency=1, lease_s=1.5, heartbeat_s=0.2, maintenance_s=0.2)
            workers.append(healthy)
            wait_until(lambda: leases.refresh() and leases.requeued == 1, what="the reaper to requeue it")
            assert handle.result(timeout_s=10) == healthy.worker.id
            leases.refresh()
            types = [(e["type"], e["id"], e["attempt"]) for e in leases.events]
            assert ("started", handle.id, 1) in types and ("requeued", handle.id, 1) in types
            assert ("started", handle.id, 2) in types and ("succeeded", handle.id, 2) in types
            assert types.index(("requeued", handle.id, 1)) < types.index(("started", handle.id, 2))
            thaw.set()  # the frozen worker wakes and tries to complete: its token is stale
            wait_until(lambda: "another attempt owns it" in caplog.text, what="the late completion to be refused")
    finally:
        thaw.set()
    task = tq.get(handle.id)
    assert (task.status, task.attempts, task.result) == (taskq.TaskStatus.SUCCEEDED, 2, healthy.worker.id)
    assert tq.stats().counters.get("succeeded") == 1
    html = leases._repr_html_()
    assert 'class="taskq-leases-static"' in html and "requeued" in html


def test_leases_see_each_heartbeat_extend_a_lease(
    tq: taskq.TaskQueue, leases: Leases, workers: list[taskq.BackgroundWorker]
) -> None:
    release = threading.Event()

    @tq.task(name="hold")
    def hold() -> str:
        release.wait(30)
        return "ok"

    handle = hold.enqueue()
    workers.append(tq.start_worker(concurrency=1, lease_s=3, heartbeat_s=0.1))
    try:
        wait_until(lambda: leases.refresh() and leases.running_total == 1, what="the task to start")
        wait_until(lambda: leases.refresh() and leases.extensions >= 2, what="two heartbeats")
        (lease,) = leases.leases
        assert lease["extensions"] >= 2 and lease["extended_ms"] is not None
        assert 0 < lease["lease_left_ms"] <= 3000
    finally:
        release.set()
    assert handle.result(timeout_s=10) == "ok"
    wait_until(lambda: leases.refresh() and leases.leases == [], what="the lease to end")
    assert [e["type"] for e in leases.events][-1] == "succeeded"
