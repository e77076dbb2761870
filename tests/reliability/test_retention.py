"""Memory per finished task (issue 17): a finished record keeps only what readers need, and the
snapshot shows the retained memory (the server's used_memory and the records kept)."""

from __future__ import annotations

import dataclasses

import redis
from helpers import claim_one, complete, fail, wait_until

import taskq
from taskq.server import EmbeddedServer
from taskq.telemetry.memory import retained_finished, used_memory_of
from taskq.telemetry.prometheus import prometheus_text

QUEUED_FIELDS = {
    "name", "args", "priority", "attempts", "max_retries", "result_ttl_s", "enqueued_ms", "ready_ms", "status", "score",
}  # fmt: skip
RUNNING_ONLY = {"started_ms", "worker", "token", "lease_ms"}
FINISHED_FIELDS = {
    "name", "args", "priority", "attempts", "max_retries", "enqueued_ms", "status", "started_ms", "worker", "result",
    "finished_ms",
}  # fmt: skip


def test_a_finished_record_drops_what_only_a_queued_or_running_task_needs(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    handle = tq.enqueue("add", args=[1, 2], force=True)
    key = tq.ops.queue_keys("default").task(handle.id)
    assert set(rc.hgetall(key)) == QUEUED_FIELDS
    claimed = claim_one(tq)
    assert set(rc.hgetall(key)) == QUEUED_FIELDS | RUNNING_ONLY
    running_bytes = rc.memory_usage(key, samples=0)
    assert complete(tq, claimed, 3) == 1
    assert set(rc.hgetall(key)) == FINISHED_FIELDS
    assert rc.memory_usage(key, samples=0) < running_bytes
    assert 0 < rc.ttl(key) <= tq.result_ttl_s  # still expires after its result TTL, read before the drop
    task = tq.get(handle.id)  # every field a reader shows is still there
    assert (task.status, task.result, task.args, task.kwargs, task.priority) == (
        taskq.TaskStatus.SUCCEEDED,
        3,
        [1, 2],
        {},
        5,
    )
    assert (task.attempts, task.max_retries, task.worker, task.timeout_s) == (1, 3, "w1", None)
    assert task.enqueued_ms <= task.started_ms <= task.finished_ms  # type: ignore[operator]
    assert (task.error_type, task.error, task.traceback) == (None, None, None)


def test_a_dead_record_keeps_its_result_ttl_for_a_redrive(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    handle = tq.enqueue("add", args=[1, 2], result_ttl_s=120, max_retries=0, force=True)
    key = tq.ops.queue_keys("default").task(handle.id)
    assert fail(tq, claim_one(tq), -1)[0] == "dead"
    record = rc.hgetall(key)
    assert not {"score", "ready_ms", "lease_ms", "token"} & set(record)
    assert record["result_ttl_s"] == "120" and record["error_type"] == "ValueError"
    assert tq.get(handle.id).status is taskq.TaskStatus.DEAD
    assert tq.dead_letters("default").requeue([handle.id]) == 1
    assert {"score", "ready_ms"} <= set(rc.hgetall(key))  # queued again: the queue's fields are back
    assert complete(tq, claim_one(tq), 5) == 1
    assert 0 < rc.ttl(key) <= 120 and tq.get(handle.id).result == 5


def test_the_snapshot_shows_used_memory_and_the_records_kept(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    for n in range(4):
        tq.enqueue("add", args=[n, n], force=True)
    for _ in range(3):
        assert complete(tq, claim_one(tq), 0) == 1
    # windows cover whole seconds up to the current one: the three show once their second ended
    wait_until(lambda: tq.snapshot("default").queue("default").retained_finished == 3, what="3 records kept")
    snap = tq.snapshot("default")
    assert snap.used_memory_bytes is not None and snap.used_memory_bytes > 0
    assert snap.queue("default").retained_finished == 3  # finished within the window, fewer than rate x TTL
    plain = snap.to_dict()
    assert plain["used_memory_bytes"] == snap.used_memory_bytes and plain["queues"][0]["retained_finished"] == 3
    text = prometheus_text(snap)
    assert 'taskq_retained_finished_tasks{queue="default"} 3' in text
    assert f"taskq_redis_used_memory_bytes {snap.used_memory_bytes}" in text


def test_the_estimate_is_rate_times_ttl_at_most_all_that_finished(tq: taskq.TaskQueue) -> None:
    tq.enqueue("add", args=[1, 1], force=True)
    q = tq.snapshot("default").queue("default")
    assert q.retained_finished == 0
    window = max(q.windows, key=lambda w: w.length_s)
    busy = dataclasses.replace(
        q,
        counters={**q.counters, "succeeded": 10**6},
        windows=(window._replace(counts={"succeeded": 900}, start_ms=0, end_ms=900_000),),  # 1 a second
        dead=2,
    )
    assert retained_finished(busy, 3600) == 2 + 3600  # an hour at 1 a second, and the dead ones
    assert retained_finished(busy, 0) == 2  # deleted at once: only the dead are kept
    assert retained_finished(busy, 10**9) == 2 + 10**6  # never more than ever finished
    assert retained_finished(dataclasses.replace(busy, windows=()), 3600) == 2 + 10**6  # no window: the bound


def test_used_memory_is_none_without_info(fake_server: EmbeddedServer) -> None:
    """fakeredis has no INFO: the snapshot is complete all the same, its used_memory None."""
    with taskq.TaskQueue(fake_server.url) as tq:
        tq.redis.flushall()
        tq.enqueue("add", args=[1, 1], force=True)
        snap = tq.snapshot()
        assert snap.queue("default").queued == 1 and snap.queue("default").retained_finished == 0
        assert snap.used_memory_bytes is None
    assert used_memory_of({"a": {"used_memory": 5}, "b": {"used_memory": 7}}) == 12  # a cluster's nodes
    assert used_memory_of(redis.ResponseError("unknown command 'INFO'")) is None
