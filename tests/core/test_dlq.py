"""The dead-letter queue: list, inspect, re-drive and purge (one, a filter, or all)."""

from __future__ import annotations

import time

import pytest
import redis
from helpers import claim, claim_one, complete, expire_leases, fail, kill, places

import taskq


def make_dead(tq: taskq.TaskQueue, name: str, error_type: str, queue: str = "default") -> str:
    task_id = tq.enqueue(name, queue=queue, max_retries=0, force=True).id
    task = claim_one(tq, queue)
    assert task.id == task_id
    reply = fail(tq, task, 0, error_type=error_type, error=f"{error_type} in {name}", traceback=f"tb of {task_id}")
    assert reply[0] == "dead"  # no retries left, so even a 0 ms retry delay dead-letters it
    return task_id


@pytest.fixture
def dead(tq: taskq.TaskQueue) -> dict[str, str]:
    """Four dead tasks: two names crossed with two error types."""
    return {
        "a_val": make_dead(tq, "a", "ValueError"),
        "a_key": make_dead(tq, "a", "KeyError"),
        "b_val": make_dead(tq, "b", "ValueError"),
        "b_key": make_dead(tq, "b", "KeyError"),
    }


def test_list_shows_the_error_and_attempts(tq: taskq.TaskQueue) -> None:
    task_id = tq.enqueue("flaky", args=[1], max_retries=2, force=True).id
    for attempt in (1, 2, 3):
        task = claim_one(tq)
        assert task.attempts == attempt
        outcome = fail(tq, task, 0, "TimeoutError", f"attempt {attempt} timed out", f"Traceback {attempt}")
        assert outcome[0] == ("dead" if attempt == 3 else "scheduled")
    (record,) = tq.dead_letters().list()
    assert record.id == task_id and record.name == "flaky" and record.args == [1]
    assert record.status is taskq.TaskStatus.DEAD and record.terminal
    assert record.error_type == "TimeoutError"
    assert record.error == "attempt 3 timed out"  # the last attempt's error
    assert record.traceback == "Traceback 3"
    assert record.attempts == 3 and record.max_retries == 2 and record.retries_left == 0
    assert record.finished_ms is not None and record.finished_ms >= record.enqueued_ms
    assert tq.dead_letters().count() == 1


def test_list_is_oldest_first_and_pages(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    dlq = tq.dead_letters()
    ids = [t.id for t in dlq.list()]
    assert sorted(ids) == sorted(dead.values())
    assert [t.id for t in dlq.list(limit=2)] + [t.id for t in dlq.list(limit=2, offset=2)] == ids
    assert dlq.list(offset=4) == []


def test_an_expired_lease_on_the_last_attempt_is_dead_lettered(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    task_id = tq.enqueue("t", force=True, max_retries=0).id
    claim(tq, "default", 1, worker="w-lost")
    assert expire_leases(tq, rc, "default", [task_id]) == (0, 1)
    (record,) = tq.dead_letters().list()
    assert record.error_type == "LeaseExpired" and "w-lost" in (record.error or "")


def test_requeue_by_ids(tq: taskq.TaskQueue, rc: redis.Redis, dead: dict[str, str]) -> None:
    dlq = tq.dead_letters()
    assert dlq.requeue([dead["a_val"], dead["b_key"], "default:not-dead"]) == 2
    assert {t.id for t in dlq.list()} == {dead["a_key"], dead["b_val"]}
    for key in ("a_val", "b_key"):
        record = tq.get(dead[key])
        assert record.status is taskq.TaskStatus.QUEUED and record.attempts == 0
        assert places(tq, rc, "default", dead[key]) == ["queued"]
        assert rc.ttl(tq.ops.queue_keys("default").task(dead[key])) == -1  # alive again: no expiry
    assert dlq.requeue([dead["a_val"]]) == 0  # no longer dead: skipped


def test_requeue_by_name(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    assert tq.dead_letters().requeue(name="a") == 2
    assert {t.id for t in claim(tq, "default", 10)} == {dead["a_val"], dead["a_key"]}


def test_requeue_by_error_type(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    assert tq.dead_letters().requeue(error_type="KeyError") == 2
    assert {t.id for t in claim(tq, "default", 10)} == {dead["a_key"], dead["b_key"]}


def test_requeue_by_name_and_error_type(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    assert tq.dead_letters().requeue(name="b", error_type="ValueError") == 1
    assert [t.id for t in claim(tq, "default", 10)] == [dead["b_val"]]


def test_requeue_all(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    dlq = tq.dead_letters()
    assert dlq.requeue(all=True) == 4
    assert dlq.list() == [] and dlq.count() == 0
    assert tq.stats().queued == 4
    assert tq.stats().counters["redriven"] == 4


def test_requeued_task_gets_a_full_set_of_attempts(tq: taskq.TaskQueue) -> None:
    task_id = make_dead(tq, "t", "E")
    tq.dead_letters().requeue([task_id])
    task = claim_one(tq)
    assert task.id == task_id and task.attempts == 1
    assert complete(tq, task, "second life") == 1
    assert tq.handle(task_id).result(timeout_s=1) == "second life"


def test_purge_by_ids(tq: taskq.TaskQueue, rc: redis.Redis, dead: dict[str, str]) -> None:
    dlq = tq.dead_letters()
    assert dlq.purge([dead["a_val"], "default:unknown"]) == 1
    with pytest.raises(taskq.TaskNotFound):
        tq.get(dead["a_val"])
    assert places(tq, rc, "default", dead["a_val"]) == []
    assert len(dlq.list()) == 3
    assert tq.stats().counters["purged"] == 1


def test_purge_by_name(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    assert tq.dead_letters().purge(name="b") == 2
    assert {t.id for t in tq.dead_letters().list()} == {dead["a_val"], dead["a_key"]}


def test_purge_by_error_type(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    assert tq.dead_letters().purge(error_type="ValueError") == 2
    assert {t.id for t in tq.dead_letters().list()} == {dead["a_key"], dead["b_key"]}


def test_purge_all(tq: taskq.TaskQueue, rc: redis.Redis, dead: dict[str, str]) -> None:
    other = make_dead(tq, "a", "ValueError", queue="other")
    assert tq.dead_letters().purge(all=True) == 4
    assert tq.dead_letters().list() == []
    assert not list(rc.scan_iter(match="taskq:{default}:t:*"))
    assert [t.id for t in tq.dead_letters("other").list()] == [other]  # other queues untouched


def test_purge_frees_the_idempotency_key(tq: taskq.TaskQueue) -> None:
    first = tq.enqueue("t", force=True, idempotency_key="order-7", max_retries=0).id
    kill(tq)
    assert tq.enqueue("t", force=True, idempotency_key="order-7").id == first  # still remembered while dead
    tq.dead_letters().purge([first])
    assert tq.enqueue("t", force=True, idempotency_key="order-7").id != first


@pytest.mark.parametrize("method", ["requeue", "purge"])
def test_a_selector_is_required(tq: taskq.TaskQueue, dead: dict[str, str], method: str) -> None:
    with pytest.raises(taskq.InvalidOption, match="all=True"):
        getattr(tq.dead_letters(), method)()
    assert len(tq.dead_letters().list()) == 4


def test_empty_selections_do_nothing(tq: taskq.TaskQueue, dead: dict[str, str]) -> None:
    dlq = tq.dead_letters()
    assert dlq.requeue([]) == 0
    assert dlq.requeue(name="nobody") == 0
    assert dlq.purge(error_type="NoSuchError") == 0
    assert len(dlq.list()) == 4


def test_dead_records_expire_after_dead_ttl(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url, dead_ttl_s=1) as tq:
        task_id = tq.enqueue("t", force=True, idempotency_key="k", max_retries=0).id
        kill(tq)
        k = tq.ops.queue_keys("default")
        assert 0 < rc.pttl(k.task(task_id)) <= 1000
        assert 0 < rc.pttl(k.idem("k")) <= 1000
        keep = tq.enqueue("t", force=True).id  # a live task must not be touched by the trimming
        rc.pexpire(k.task(task_id), 50)  # let the record run out now rather than in a second
        rc.pexpire(k.idem("k"), 50)
        assert tq.dead_letters().list()[0].id == task_id
        rc.zadd(k.dead, {task_id: 1})  # and date the death back, past the TTL
        time.sleep(0.1)
        assert tq.dead_letters().list() == []
        tq._exec.run(tq.ops.requeue_expired("default"))  # the reaper trims the DLQ index too
        assert tq.dead_letters().count() == 0
        assert tq.enqueue("t", force=True, idempotency_key="k").id != task_id
        assert tq.get(keep).status is taskq.TaskStatus.QUEUED


def test_dead_index_is_trimmed_only_after_the_ttl(redis_url: str) -> None:
    with taskq.TaskQueue(redis_url, dead_ttl_s=3600) as tq:
        tq.enqueue("t", force=True, max_retries=0)
        kill(tq)
        tq._exec.run(tq.ops.requeue_expired("default"))
        assert tq.dead_letters().count() == 1
