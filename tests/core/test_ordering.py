"""Claim order: highest priority first, FIFO within a priority; aging lets old work overtake."""

from __future__ import annotations

import heapq
import time

import redis
from helpers import claim, claim_one, complete, fail, release, wait_ms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskq

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

priorities = st.lists(st.integers(1, 10), min_size=1, max_size=30)


def expected_order(ids: list[str], prios: list[int]) -> list[str]:
    """(priority desc, FIFO): a stable sort on priority alone."""
    return [i for i, _ in sorted(zip(ids, prios, strict=True), key=lambda pair: -pair[1])]


def drain_one_at_a_time(tq: taskq.TaskQueue, queue: str = "default") -> list[str]:
    out = []
    while batch := claim(tq, queue, 1):
        out.append(batch[0].id)
    return out


@PROPERTY
@given(prios=priorities)
def test_enqueue_drains_by_priority_then_fifo(tq: taskq.TaskQueue, rc: redis.Redis, prios: list[int]) -> None:
    rc.flushdb()
    ids = [tq.enqueue("t", force=True, priority=p).id for p in prios]
    assert drain_one_at_a_time(tq) == expected_order(ids, prios)


@PROPERTY
@given(prios=priorities, batch=st.integers(1, 7))
def test_enqueue_many_drains_by_priority_then_fifo(
    tq: taskq.TaskQueue, rc: redis.Redis, prios: list[int], batch: int
) -> None:
    rc.flushdb()
    ids = [h.id for h in tq.enqueue_many([{"name": "t", "force": True, "priority": p} for p in prios])]
    claimed = []
    while tasks := claim(tq, "default", batch):
        claimed += [t.id for t in tasks]
    assert claimed == expected_order(ids, prios)


steps = st.lists(st.one_of(st.integers(1, 10), st.just("claim")), min_size=1, max_size=40)


@PROPERTY
@given(steps=steps)
def test_interleaved_enqueues_and_claims(tq: taskq.TaskQueue, rc: redis.Redis, steps: list[int | str]) -> None:
    """At every claim, the task returned is the best one waiting at that moment."""
    rc.flushdb()
    waiting: list[tuple[int, int, str]] = []  # (-priority, arrival, id): a model heap
    for n, step in enumerate(steps):
        if step == "claim":
            got = claim(tq, "default", 1)
            want = heapq.heappop(waiting)[2] if waiting else None
            assert (got[0].id if got else None) == want
        else:
            assert isinstance(step, int)
            heapq.heappush(waiting, (-step, n, tq.enqueue("t", force=True, priority=step).id))
    assert drain_one_at_a_time(tq) == [heapq.heappop(waiting)[2] for _ in range(len(waiting))]


def test_priority_order_across_a_batch_claim(tq: taskq.TaskQueue) -> None:
    low = tq.enqueue("t", force=True, priority=1).id
    mid = [tq.enqueue("t", force=True, priority=5).id for _ in range(3)]
    high = tq.enqueue("t", force=True, priority=10).id
    assert [t.id for t in claim(tq, "default", 10)] == [high, *mid, low]


def test_queues_are_independent(tq: taskq.TaskQueue) -> None:
    a = tq.enqueue("t", force=True, queue="a", priority=1).id
    b = tq.enqueue("t", force=True, queue="b", priority=10).id
    assert [t.id for t in claim(tq, "a", 5)] == [a]
    assert [t.id for t in claim(tq, "b", 5)] == [b]


def test_released_and_requeued_tasks_keep_their_place(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    """A task given back (release, or an expired lease) goes back where it was, not to the end."""
    first, second, third = (tq.enqueue("t", force=True, priority=5).id for _ in range(3))
    task = claim_one(tq)
    assert task.id == first
    assert tq._exec.run(tq.ops.release("default", [(task.id, task.token)])) == 1
    assert claim_one(tq).id == first
    # lease expiry: claim with a 1 ms lease, let it lapse, reap
    again = claim(tq, "default", 1, lease_ms=1)[0]
    assert again.id == second
    wait_ms(5)
    assert tq._exec.run(tq.ops.requeue_expired("default")) == (1, 0)
    assert [t.id for t in claim(tq, "default", 5)] == [second, third]


def test_a_retried_task_queues_behind_what_arrived_meanwhile(tq: taskq.TaskQueue) -> None:
    first = tq.enqueue("t", force=True).id
    task = claim_one(tq)
    later = tq.enqueue("t", force=True).id
    assert fail(tq, task, retry_delay_ms=0)[0] == "scheduled"
    assert [t.id for t in claim(tq, "default", 5)] == [later, first]


def test_redriven_task_queues_as_new(tq: taskq.TaskQueue) -> None:
    dead = tq.enqueue("t", force=True, priority=5).id
    assert fail(tq, claim_one(tq))[0] == "dead"
    waiting = tq.enqueue("t", force=True, priority=5).id
    assert tq.dead_letters().requeue([dead]) == 1
    assert [t.id for t in claim(tq, "default", 5)] == [waiting, dead]


def test_delayed_task_joins_by_priority_when_due(tq: taskq.TaskQueue) -> None:
    delayed = tq.enqueue("t", force=True, priority=9, delay_s=0.05).id
    normal = tq.enqueue("t", force=True, priority=5).id
    assert [t.id for t in claim(tq, "default", 5)] == [normal]
    later = tq.enqueue("t", force=True, priority=5).id
    wait_ms(60)
    assert [t.id for t in claim(tq, "default", 5)] == [delayed, later]


def test_completed_tasks_do_not_come_back(tq: taskq.TaskQueue) -> None:
    tq.enqueue("t", force=True)
    assert complete(tq, claim_one(tq), "ok") == 1
    assert claim(tq, "default", 5) == []


# -- aging ----------------------------------------------------------------------------


def test_aging_lets_an_old_low_priority_task_overtake(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("default", aging_s=0.01)  # one priority level per 10 ms of waiting
    old_low = tq.enqueue("t", force=True, priority=1).id
    time.sleep(0.12)  # nine levels (90 ms) and a margin
    new_high = tq.enqueue("t", force=True, priority=10).id
    assert [t.id for t in claim(tq, "default", 2)] == [old_low, new_high]


def test_aging_does_not_reorder_tasks_that_have_not_waited_long_enough(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("default", aging_s=0.05)
    old_low = tq.enqueue("t", force=True, priority=4).id
    new_high = tq.enqueue("t", force=True, priority=5).id  # well under 50 ms later
    assert [t.id for t in claim(tq, "default", 2)] == [new_high, old_low]
    old_low = tq.enqueue("t", force=True, priority=4).id
    time.sleep(0.07)
    new_high = tq.enqueue("t", force=True, priority=5).id
    assert [t.id for t in claim(tq, "default", 2)] == [old_low, new_high]


def test_strict_priority_never_lets_low_priority_overtake(tq: taskq.TaskQueue) -> None:
    old_low = tq.enqueue("t", force=True, priority=9).id
    time.sleep(0.12)
    new_high = tq.enqueue("t", force=True, priority=10).id
    assert [t.id for t in claim(tq, "default", 2)] == [new_high, old_low]


def test_clearing_aging_restores_strict_priority(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("default", aging_s=0.01)
    tq.configure_queue("default", aging_s=None)
    old_low = tq.enqueue("t", force=True, priority=1).id
    time.sleep(0.12)
    new_high = tq.enqueue("t", force=True, priority=10).id
    assert [t.id for t in claim(tq, "default", 2)] == [new_high, old_low]


def test_aging_keeps_fifo_within_a_priority(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("default", aging_s=0.001)
    ids = [tq.enqueue("t", force=True, priority=p).id for p in (3, 3, 3, 3)]
    assert [t.id for t in claim(tq, "default", 4)] == ids


def test_release_keeps_place_under_aging(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("default", aging_s=0.01)
    old_low = tq.enqueue("t", force=True, priority=1).id
    time.sleep(0.12)
    task = claim_one(tq)
    assert task.id == old_low
    new_high = tq.enqueue("t", force=True, priority=10).id
    assert release(tq, task) == 1
    assert [t.id for t in claim(tq, "default", 2)] == [old_low, new_high]
