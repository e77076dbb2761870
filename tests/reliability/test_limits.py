"""A payload at the 1 MiB limit (issue 17, "big numbers"): accepted, and it round-trips through
the record, a claim and a worker; one byte more is refused with a typed error and writes nothing.
(The million-task queue and the 10,000 queues are measured by ``make bignum``.)"""

from __future__ import annotations

import io
import json

import pytest
import redis
from helpers import claim_one, wait_until
from rich.console import Console

import taskq
from taskq.cli.render import MAX_QUEUE_TABLES, render_stats
from taskq.task import DEFAULT_MAX_PAYLOAD_BYTES

LIMIT = DEFAULT_MAX_PAYLOAD_BYTES


def payload_of_size(size: int) -> list[str]:
    """args whose JSON, with the empty kwargs' ``{}``, is exactly ``size`` bytes (the limit counts both)."""
    args = ["é" * 10 + "x" * (size - len('["]{}"') - 20)]  # é is 2 bytes in UTF-8: the limit is in bytes
    assert len(json.dumps(args, ensure_ascii=False).encode()) + len("{}") == size
    return args


def test_the_default_limit_is_one_mebibyte() -> None:
    assert LIMIT == 1024 * 1024


def test_a_payload_at_the_limit_round_trips(tq: taskq.TaskQueue, workers: list[taskq.BackgroundWorker]) -> None:
    args = payload_of_size(LIMIT)
    handle = tq.enqueue("echo_len", args=args, force=True)
    assert tq.get(handle.id).args == args
    claimed = claim_one(tq)
    assert claimed.args == args
    tq.redis.delete(tq.ops.queue_keys("default").task(handle.id))  # the claim helper's lease: start afresh

    @tq.task(name="echo_len")
    def echo_len(text: str) -> int:
        return len(text.encode())

    workers.append(tq.start_worker(concurrency=1))
    handle = tq.enqueue("echo_len", args=args)
    assert handle.result(timeout_s=30) == len(args[0].encode())
    wait_until(lambda: tq.get(handle.id).status is taskq.TaskStatus.SUCCEEDED, what="the task to succeed")


@pytest.mark.parametrize("where", ["args", "kwargs"])
def test_one_byte_over_is_refused_and_writes_nothing(tq: taskq.TaskQueue, rc: redis.Redis, where: str) -> None:
    tq.enqueue("warm", force=True)  # the queue exists: a refusal must not even touch its keys
    before = {key: rc.dump(key) for key in rc.scan_iter("*") if "events" not in key}
    events = rc.xlen(tq.ops.queue_keys("default").events)
    args = payload_of_size(LIMIT + 1)
    if where == "args":
        call = lambda: tq.enqueue("big", args=args, force=True)  # noqa: E731
    else:
        # kwargs {"k": text} and args [] ('[]' is 2 bytes, like the '{}' it replaces)
        text = args[0][: len(args[0]) - len('{"k":""}') + len('[""]')]
        call = lambda: tq.enqueue("big", kwargs={"k": text}, force=True)  # noqa: E731
    with pytest.raises(taskq.PayloadTooLarge) as info:
        call()
    assert str(LIMIT + 1) in str(info.value) and str(LIMIT) in str(info.value)
    assert isinstance(info.value, taskq.TaskqError)
    after = {key: rc.dump(key) for key in rc.scan_iter("*") if "events" not in key}
    assert after == before and rc.xlen(tq.ops.queue_keys("default").events) == events
    many = [{"name": "small", "args": [1], "force": True}, {"name": "big", "args": args, "force": True}]
    with pytest.raises(taskq.PayloadTooLarge):
        tq.enqueue_many(many)  # one too large in a batch: none of the batch is written
    assert tq.stats("default").queued == 1


def test_stats_draws_the_busiest_queues_and_sums_up_the_rest(tq: taskq.TaskQueue) -> None:
    """With many queues ``taskq stats`` stays usable: the tables of the busiest, one line for the rest."""
    for i in range(MAX_QUEUE_TABLES + 5):
        tq.enqueue_many([{"name": "noop", "queue": f"q{i:02d}", "force": True}] * (i + 1))
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_stats(tq.snapshot(running_limit=0)))
    text = console.export_text()
    assert text.count("queue q") == MAX_QUEUE_TABLES
    assert "queue q24" in text and "queue q05" in text and "queue q04" not in text
    assert "5 more queues (15 pending, 0 dead in all)" in text
