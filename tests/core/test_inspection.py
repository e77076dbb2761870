"""tq.inspect: a read-only look at one queue's sorted sets, against the real server (and the
fakeredis fallback for the script itself)."""

from __future__ import annotations

import pytest
import redis
from helpers import claim, expire_leases, extend, fail, wait_ms

import taskq
from taskq.inspection import STRICT_WINDOW_US


def test_queued_is_listed_in_claim_order_with_scores_decoded(tq: taskq.TaskQueue) -> None:
    ids = [tq.enqueue("t", force=True, priority=p).id for p in (1, 10, 5, 10, 5, 1, 7)]
    seen = tq.inspect("default")
    assert seen.queue == "default" and seen.aging_s is None
    assert [e.position for e in seen.queued] == list(range(7))
    assert [e.priority for e in seen.queued] == [10, 10, 7, 5, 5, 1, 1]
    scores = [e.score for e in seen.queued]
    assert scores == sorted(scores)
    for e in seen.queued:
        assert e.priority is not None and e.ready_us is not None
        assert e.score == e.ready_us + (10 - e.priority) * STRICT_WINDOW_US
        assert e.name == "t" and e.attempts == 0 and e.effective_priority is None
        # the FIFO clock is the server's time in microseconds, within a minute of this reading
        assert abs(e.ready_us // 1000 - seen.taken_ms) < 60_000
    # within one priority, the one enqueued first is first
    fives = [e for e in seen.queued if e.priority == 5]
    assert [e.id for e in fives] == [ids[2], ids[4]] and fives[0].ready_us < fives[1].ready_us  # type: ignore[operator]
    # claiming takes them in exactly the listed order
    claimed = [task.id for _ in range(7) for task in claim(tq)]
    assert claimed == [e.id for e in seen.queued]
    assert tq.inspect("default").queued == ()


def test_aging_score_and_effective_priority(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("aged", aging_s=0.05)
    old = tq.enqueue("t", force=True, queue="aged", priority=1).id
    wait_ms(500)  # ten aging windows: the old priority-1 task now ranks as about 11
    new = tq.enqueue("t", force=True, queue="aged", priority=10).id
    seen = tq.inspect("aged")
    assert seen.aging_s == pytest.approx(0.05)
    assert [e.id for e in seen.queued] == [old, new]
    first, second = seen.queued
    assert first.effective_priority is not None and second.effective_priority is not None
    assert first.effective_priority > second.effective_priority >= 10 - 0.1
    assert first.score == first.ready_us + 9 * 50_000  # type: ignore[operator]
    assert [task.id for task in claim(tq, "aged", n=2)] == [old, new]


def test_running_deadlines_move_on_heartbeat(tq: taskq.TaskQueue) -> None:
    tq.enqueue("t", force=True, priority=4)
    (task,) = claim(tq, lease_ms=30_000, worker="w-7")
    before = tq.inspect()
    (lease,) = before.running
    assert (lease.id, lease.worker, lease.attempt, lease.token) == (task.id, "w-7", 1, task.token)
    assert lease.name == "t" and lease.priority == 4 and lease.started_ms is not None
    assert lease.deadline_ms == lease.started_ms + 30_000 and lease.lease_ms == 30_000
    assert 0 < lease.lease_left_ms <= 30_000 and before.running_total == 1 and before.queued_total == 0
    wait_ms(20)
    assert extend(tq, task, lease_ms=30_000) == 1
    after = tq.inspect().running[0]
    assert after.deadline_ms > lease.deadline_ms
    assert after.token == lease.token
    # the reaper takes the lease back: a new attempt gets a new fencing token
    assert expire_leases(tq, tq.redis, "default", [task.id]) == (1, 0)
    back = tq.inspect()
    assert back.running == () and [e.id for e in back.queued] == [task.id] and back.queued[0].attempts == 1
    (again,) = claim(tq, worker="w-8")
    lease2 = tq.inspect().running[0]
    assert (lease2.worker, lease2.attempt, lease2.token) == ("w-8", 2, again.token)
    assert lease2.token != lease.token


def test_scheduled_and_dead_places(tq: taskq.TaskQueue) -> None:
    later = tq.enqueue("t", force=True, delay_s=60).id
    soon = tq.enqueue("t", force=True, delay_s=30).id
    tq.enqueue("boom", force=True, max_retries=0)
    (task,) = claim(tq)
    fail(tq, task, -1, error_type="KeyError")
    seen = tq.inspect()
    assert [e.id for e in seen.scheduled] == [soon, later]
    assert 0 < seen.scheduled[0].due_in_ms <= 30_000 < seen.scheduled[1].due_in_ms <= 60_000
    assert seen.scheduled[0].due_ms == seen.taken_ms + seen.scheduled[0].due_in_ms
    (dead,) = seen.dead
    assert (dead.id, dead.name, dead.attempts, dead.error_type) == (task.id, "boom", 1, "KeyError")
    assert seen.totals == {"queued": 0, "scheduled": 2, "running": 0, "dead": 1}


def test_limit_and_totals(tq: taskq.TaskQueue) -> None:
    ids = [tq.enqueue("t", force=True).id for _ in range(7)]
    seen = tq.inspect("default", limit=3)
    assert [e.id for e in seen.queued] == ids[:3]
    assert (seen.queued_total, seen.limit) == (7, 3)
    assert [e.id for e in tq.inspect(limit=1000).queued] == ids
    for bad in (0, 1001, True, "3", 2.0, None):
        with pytest.raises(taskq.InvalidOption):
            tq.inspect("default", limit=bad)  # type: ignore[arg-type]


def test_bad_queue_name_is_a_typed_error_and_writes_nothing(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    for bad in ("a{b}", "", "x y", "q\n", "ü", 7):
        with pytest.raises(taskq.InvalidQueueName):
            tq.inspect(bad)  # type: ignore[arg-type]
    assert rc.dbsize() == 0
    # an unknown queue is simply empty, and inspecting it writes nothing either
    assert tq.inspect("never-used").totals == {"queued": 0, "scheduled": 0, "running": 0, "dead": 0}
    assert rc.dbsize() == 0


async def test_async_twin_reads_the_same(tq: taskq.TaskQueue) -> None:
    for p in (3, 9, 6):
        tq.enqueue("t", force=True, priority=p, queue="twins")
    async with taskq.AsyncTaskQueue(tq.url) as aq:
        seen = await aq.inspect("twins", limit=2)
        with pytest.raises(taskq.InvalidQueueName):
            await aq.inspect("a:b")
    blocking = tq.inspect("twins", limit=2)
    assert [e.id for e in seen.queued] == [e.id for e in blocking.queued]
    assert [e.priority for e in seen.queued] == [9, 6] and seen.queued_total == 3


@pytest.mark.conformance
def test_inspect_on_every_backend(any_url: str) -> None:
    with taskq.TaskQueue(any_url) as tq:
        first = tq.enqueue("t", force=True, priority=2).id
        second = tq.enqueue("t", force=True, priority=8).id
        (task,) = claim(tq)
        seen = tq.inspect()
        assert task.id == second
        assert [e.id for e in seen.queued] == [first] and [e.id for e in seen.running] == [second]
        assert seen.running[0].token == task.token and seen.running[0].worker == "w1"
