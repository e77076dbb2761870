"""Task metadata: ``enqueue(..., meta={...})`` is validated, stored as one JSON field of the
sparse record (none when absent), read back by ``tq.get`` and seen by the running task as
``current_task().meta``."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

import taskq
from taskq.worker import current_task


def record(tq: taskq.TaskQueue, rc: redis.Redis, task_id: str, queue: str = "default") -> dict[str, str]:
    return rc.hgetall(tq.ops.queue_keys(queue).task(task_id))  # type: ignore[return-value]


def test_meta_is_stored_as_one_json_field_and_returned_by_get(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    meta = {"request_id": "req-1.a_B", "tenant": "ünïcode ok"}
    task_id = tq.enqueue("plain", meta=meta, force=True).id
    assert json.loads(record(tq, rc, task_id)["meta"]) == meta
    assert tq.get(task_id).meta == meta


def test_absent_or_empty_meta_adds_no_field(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    plain = tq.enqueue("plain", force=True).id
    empty = tq.enqueue("plain", meta={}, force=True).id
    for task_id in (plain, empty):
        assert "meta" not in record(tq, rc, task_id)
        assert tq.get(task_id).meta == {}


def test_enqueue_many_and_task_function_take_meta(tq: taskq.TaskQueue) -> None:
    @tq.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    handle = add.enqueue(1, 2, meta={"k": "from-task"})
    assert tq.get(handle.id).meta == {"k": "from-task"}
    many = tq.enqueue_many([{"name": "add", "args": [1, 2], "meta": {"k": "one"}}, {"name": "add", "args": [3, 4]}])
    assert [tq.get(h.id).meta for h in many] == [{"k": "one"}, {}]


async def test_async_client_takes_meta(redis_url: str) -> None:
    async with taskq.AsyncTaskQueue(redis_url) as atq:
        handle = await atq.enqueue("plain", meta={"request_id": "async"}, force=True)
        assert (await atq.get(handle.id)).meta == {"request_id": "async"}


def test_running_task_sees_meta_read_only(tq: taskq.TaskQueue, workers: list[Any]) -> None:
    @tq.task
    def whoami() -> dict[str, str]:
        context = current_task()
        assert context is not None
        with pytest.raises(TypeError):
            context.meta["request_id"] = "changed"  # type: ignore[index]
        return dict(context.meta)

    with_meta = whoami.enqueue(meta={"request_id": "abc123"})
    without = whoami.enqueue()
    workers.append(tq.start_worker())
    assert with_meta.result(timeout_s=10) == {"request_id": "abc123"}
    assert without.result(timeout_s=10) == {}


@pytest.mark.parametrize(
    "meta",
    [
        {"bad key": "v"},
        {"": "v"},
        {"k" * 65: "v"},
        {"k": "v" * 257},
        {"k": 1},
        {1: "v"},
        {f"k{i}": "v" for i in range(17)},
        ["request_id", "x"],
        "request_id=x",
        {"k": "\ud800"},
    ],
)
def test_bad_meta_raises_and_writes_nothing(tq: taskq.TaskQueue, rc: redis.Redis, meta: Any) -> None:
    with pytest.raises(taskq.InvalidOption):
        tq.enqueue("plain", meta=meta, force=True)
    with pytest.raises(taskq.InvalidOption):
        tq.enqueue_many([{"name": "plain", "force": True}, {"name": "plain", "meta": meta, "force": True}])
    assert rc.keys("*") == []


def test_limits_are_inclusive(tq: taskq.TaskQueue) -> None:
    meta = {f"k{i:02d}" + "x" * 61: "v" * 256 for i in range(16)}
    assert all(len(k) == 64 for k in meta)
    task_id = tq.enqueue("plain", meta=meta, force=True).id
    assert tq.get(task_id).meta == meta
