"""The Redis-CPU savings of the hot scripts (benchmarks/script_cost.py) must not change a byte
of what they write: the small-integer text table of lib/common.lua against Redis's own
conversion of a number argument, and the record fields, counters, depth and events that the
cheaper paths of enqueue.lua, claim.lua and complete.lua write, read back raw."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import taskq
from taskq.scripts import load_script


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


@pytest.fixture
def tq(redis_url: str) -> Iterator[taskq.TaskQueue]:
    with taskq.TaskQueue(redis_url) as q:
        yield q


def test_int_arg_is_the_text_redis_makes_of_the_number(raw: redis.Redis) -> None:
    """int_arg(n) stands in for the number n as a redis.call argument: ECHO shows what Redis
    makes of each (numbers past the table and fractions go through as numbers)."""
    body = load_script("enqueue").source.split("local prefix, idem_prefix, wake")[0]
    probe = body + (
        "local out = {}\n"
        "for n = -14, 14 do\n"
        "  out[#out + 1] = redis.call('ECHO', int_arg(n))\n"
        "  out[#out + 1] = redis.call('ECHO', n)\n"
        "end\n"
        "out[#out + 1] = redis.call('ECHO', int_arg(2.5))\n"
        "out[#out + 1] = redis.call('ECHO', 2.5)\n"
        "return out\n"
    )
    out = raw.eval(probe, 0)
    pairs = list(zip(out[::2], out[1::2], strict=True))
    assert len(pairs) == 30
    for mine, redis_text in pairs:
        assert mine == redis_text


def test_fmt_prints_what_percent_point_0f_prints(raw: redis.Redis) -> None:
    """fmt takes %d for whole numbers (cheaper); it must print exactly what %.0f does,
    scores of 4e15 and the sign of zero included."""
    body = load_script("enqueue").source.split("local prefix, idem_prefix, wake")[0]
    values = (
        "0, -0.0, 1, -1, 2.5, 3.5, -2.5, 1733529600123, 1733529600123456, "
        "1733529600123456 + 9 * 281474976710656, 2^53, 2^53 + 2, 1e18, 9.5e18, -9.5e18, 1e300, 1/0, -1/0"
    )
    probe = body + (
        f"local out = {{}}\nfor _, n in ipairs({{{values}}}) do\n"
        "  out[#out + 1] = fmt(n)\n  out[#out + 1] = string.format('%.0f', n)\nend\nreturn out\n"
    )
    out = raw.eval(probe, 0)
    pairs = list(zip(out[::2], out[1::2], strict=True))
    assert len(pairs) == 18
    for mine, reference in pairs:
        assert mine == reference


def _queue_keys(tq: taskq.TaskQueue, queue: str) -> tuple[str, str, str]:
    k = tq.ops.queue_keys(queue)
    return k.task_prefix, k.telemetry[1], k.telemetry[5]  # task prefix, stats, depth


def test_records_counters_and_events_of_one_task_life(tq: taskq.TaskQueue, raw: redis.Redis) -> None:
    task_prefix, stats, depth = _queue_keys(tq, "cost")
    handle = tq.enqueue("cost.t", (1,), queue="cost", priority=7, force=True)
    record = raw.hgetall(task_prefix + handle.id)
    assert record["priority"] == "7"
    assert record["attempts"] == "0"
    assert record["enqueued_ms"] == record["ready_ms"]
    assert record["enqueued_ms"].isdigit()
    assert raw.hgetall(depth) == {"7": "1"}
    assert raw.hget(stats, "enqueued") == "1"

    (task,) = tq._exec.run(tq.ops.claim("cost", 4, 45_000, "w-cost"))
    record = raw.hgetall(task_prefix + handle.id)
    assert (record["status"], record["attempts"], record["lease_ms"], record["worker"]) == (
        "running",
        "1",
        "45000",
        "w-cost",
    )
    assert record["token"] == task.token
    assert raw.hgetall(depth) == {"7": "0"}
    running = tq.ops.queue_keys("cost").running
    ((member, deadline),) = raw.zrange(running, 0, -1, withscores=True)
    assert member == handle.id
    assert deadline == int(record["started_ms"]) + 45_000

    (done,) = tq._exec.run(tq.ops.finish([tq.ops.complete_command(task, '"ok"')]))
    assert done == 1
    record = raw.hgetall(task_prefix + handle.id)
    assert (record["status"], record["result"]) == ("succeeded", '"ok"')
    assert record["finished_ms"].isdigit()
    assert "token" not in record and "lease_ms" not in record
    assert raw.ttl(task_prefix + handle.id) > 0
    assert raw.hget(stats, "succeeded") == "1"

    events = raw.xrange(tq.ops.queue_keys("cost").telemetry[2])
    assert [(e["type"], e["id"], e["priority"], e["attempt"], e["worker"]) for _, e in events] == [
        ("enqueued", handle.id, "7", "0", "-"),
        ("started", handle.id, "7", "1", "w-cost"),
        ("succeeded", handle.id, "7", "1", "w-cost"),
    ]


def test_a_batch_writes_the_same_fields_as_single_calls(tq: taskq.TaskQueue, raw: redis.Redis) -> None:
    """Claims and completions of several tasks at once take the batch paths (the deadline and
    finish time formatted once): the same values as a single call's numbers."""
    task_prefix, stats, depth = _queue_keys(tq, "batch")
    handles = tq.enqueue_many([{"name": "cost.t", "args": (i,), "queue": "batch", "force": True} for i in range(5)])
    tasks = tq._exec.run(tq.ops.claim("batch", 5, 30_000, "w-batch"))
    assert sorted(t.id for t in tasks) == sorted(h.id for h in handles)
    assert len({t.token for t in tasks}) == 5
    running = tq.ops.queue_keys("batch").running
    for member, deadline in raw.zrange(running, 0, -1, withscores=True):
        assert deadline == int(raw.hget(task_prefix + member, "started_ms")) + 30_000
    assert raw.hgetall(depth) == {"5": "0"}
    done = tq._exec.run(tq.ops.finish([tq.ops.complete_command(t, "null") for t in tasks]))
    assert done == [1] * 5
    finished = {raw.hget(task_prefix + h.id, "finished_ms") for h in handles}
    assert len(finished) == 1 and finished.pop().isdigit()
    assert raw.hget(stats, "succeeded") == "5"
    events = raw.xrange(tq.ops.queue_keys("batch").telemetry[2])
    by_type = {e["type"]: e for _, e in events}
    assert by_type["started"]["worker"] == "w-batch"  # one worker: written once
    assert sorted(by_type["succeeded"]["id"].split(" ")) == sorted(h.id for h in handles)
    assert by_type["succeeded"]["attempt"] == "1 1 1 1 1"


def test_claim_reply_carries_the_earliest_due_time(tq: taskq.TaskQueue, raw: redis.Redis) -> None:
    """claim.lua reads the scheduled set's head once when nothing is due, and reads it again
    after promoting when something was: either way the reply names the next due time."""
    scheduled = tq.ops.queue_keys("due").scheduled
    later = tq.enqueue("cost.t", (1,), queue="due", delay_s=600, force=True)
    tasks, due = tq._exec.run(tq.ops.claim_batch("due", 1, 30_000, "w"))
    assert (tasks, due) == ([], int(raw.zscore(scheduled, later.id)))

    soon = tq.enqueue("cost.t", (2,), queue="due", delay_s=300, force=True)
    raw.zadd(scheduled, {soon.id: 1})  # due since 1970
    tasks, due = tq._exec.run(tq.ops.claim_batch("due", 1, 30_000, "w"))
    assert [t.id for t in tasks] == [soon.id]
    assert due == int(raw.zscore(scheduled, later.id))

    raw.zadd(scheduled, {later.id: 1})
    tasks, due = tq._exec.run(tq.ops.claim_batch("due", 1, 30_000, "w"))
    assert ([t.id for t in tasks], due) == ([later.id], -1)
