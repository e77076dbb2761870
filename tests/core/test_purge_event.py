"""Purging the dead-letter queue writes a ``purged`` event per task deleted (purge_dead.lua), so
event readers (StateFlow, the API's feed, the dashboard) see a purged task leave ``dead``; ids
that are not in the dead-letter queue get none."""

from __future__ import annotations

import redis
from helpers import claim_one, fail, wait_until

import taskq


def make_dead(tq: taskq.TaskQueue, priority: int = 5, queue: str = "default", retries: int = 0) -> str:
    """A task dead after ``retries + 1`` attempts."""
    task_id = tq.enqueue("t", queue=queue, priority=priority, max_retries=retries, force=True).id
    for _ in range(retries + 1):
        task = claim_one(tq, queue)
        assert task.id == task_id
        outcome = fail(tq, task, 0, error_type="ValueError", error="boom")
    assert outcome[0] == "dead"
    return task_id


def purged_events(tq: taskq.TaskQueue, queue: str = "default") -> list[taskq.Event]:
    return [e for e in tq.events(queue, since="0", follow=False) if e.type == "purged"]


def test_one_purged_event_per_task_purged_and_none_for_the_rest(tq: taskq.TaskQueue) -> None:
    a, b, c = make_dead(tq, priority=8, retries=1), make_dead(tq, priority=2), make_dead(tq)
    queued = tq.enqueue("t", force=True).id  # alive: not in the dead-letter queue
    dlq = tq.dead_letters()
    assert dlq.purge([a, b, b, queued, "default:no-such-task"]) == 2
    got = [(e.type, e.task_id, e.priority, e.attempt, e.worker, e.queue) for e in purged_events(tq)]
    # the priority and the attempts the task died with; no worker does a purge
    assert got == [("purged", a, 8, 2, None, "default"), ("purged", b, 2, 1, None, "default")]
    assert [t.id for t in dlq.list()] == [c] and tq.get(queued).status is taskq.TaskStatus.QUEUED
    assert dlq.purge([a, b]) == 0  # gone already: no second event
    assert len(purged_events(tq)) == 2
    assert tq.stats().counters["purged"] == 2  # the counter and the events agree


def test_purge_all_and_by_filter_write_an_event_per_task(tq: taskq.TaskQueue) -> None:
    ids = [make_dead(tq) for _ in range(5)]
    dlq = tq.dead_letters()
    assert dlq.purge(name="nothing-by-this-name") == 0
    assert purged_events(tq) == []
    assert dlq.purge(all=True) == 5
    events = purged_events(tq)
    assert [e.task_id for e in events] == ids  # oldest death first, as the script took them
    assert len({e.stream_id for e in events}) == 1  # one script call, one stream entry
    assert dlq.purge(all=True) == 0 and len(purged_events(tq)) == 5


def test_a_task_whose_record_expired_still_gets_its_event(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    task_id = make_dead(tq, priority=9)
    rc.delete(tq.ops.queue_keys("default").task(task_id))  # the record's TTL ran out; the index kept it
    assert tq.dead_letters().purge([task_id]) == 1
    (event,) = purged_events(tq)
    assert (event.task_id, event.priority, event.attempt) == (task_id, None, None)


def test_purged_events_are_never_sampled_out(redis_url: str) -> None:
    with taskq.TaskQueue(redis_url, events_sample=1000) as tq:
        ids = {make_dead(tq) for _ in range(30)}
        assert tq.dead_letters().purge(all=True) == 30
        assert {e.task_id for e in purged_events(tq)} == ids


def test_purge_with_events_off_writes_no_stream(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url, events=False) as tq:
        task_id = make_dead(tq)
        assert tq.dead_letters().purge([task_id]) == 1
        assert not rc.exists(tq.ops.queue_keys("default").events)


def test_a_sharded_queue_names_itself_in_purged_events(
    tq: taskq.TaskQueue, workers: list[taskq.BackgroundWorker]
) -> None:
    @tq.task(queue="hot", max_retries=0)
    def broken(i: int) -> None:
        raise ValueError(i)

    tq.configure_queue("hot", shards=3)
    ids = {broken.enqueue(i).id for i in range(6)}
    worker = tq.start_worker(queues=["hot"], concurrency=3)
    workers.append(worker)
    wait_until(lambda: tq.stats("hot").dead == 6, what="six dead")
    worker.stop()
    assert tq.dead_letters("hot").purge(all=True) == 6
    events = purged_events(tq, "hot")
    assert sorted(e.task_id for e in events) == sorted(ids) and {e.queue for e in events} == {"hot"}
