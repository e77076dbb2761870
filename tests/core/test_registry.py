"""The task registry workers publish, and enqueue by name from a client without the code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
from helpers import wait_until

import taskq
from taskq.keys import GlobalKeys
from taskq.registry import REGISTRY_RETENTION_MS, make_task_def, parameters_schema

FAST = taskq.Backoff(base_s=0.01, min_s=0.01, cap_s=0.05)


@pytest.fixture
def producer(redis_url: str) -> Iterator[taskq.TaskQueue]:
    """A client that holds no task functions (like the CLI or the HTTP API)."""
    with taskq.TaskQueue(redis_url) as client:
        yield client


def test_name_enqueued_without_the_function_takes_the_published_options(
    tq: taskq.TaskQueue, producer: taskq.TaskQueue
) -> None:
    attempts: list[int] = []

    @tq.task(name="send_email", queue="emails", max_retries=1, timeout_s=30, backoff=FAST)
    def send_email(to: str, subject: str = "hi") -> None:
        attempts.append(1)
        raise RuntimeError(f"mail server down for {to}")

    with tq.start_worker(queues=["emails"]):
        published = producer.registered_tasks()
        assert set(published) == {"send_email"}
        entry = published["send_email"]
        assert (entry.queue, entry.max_retries, entry.timeout_s, entry.backoff) == ("emails", 1, 30, FAST)
        assert entry.parameters["required"] == ["to"]
        handle = producer.enqueue("send_email", args=["a@b.c"])
        assert producer.get(handle.id).queue == "emails"
        with pytest.raises(taskq.TaskFailed, match="mail server down"):
            handle.result(timeout_s=10)
    task = producer.get(handle.id)
    assert task.status is taskq.TaskStatus.DEAD
    assert task.attempts == 2 and len(attempts) == 2


def test_arguments_are_checked_against_the_published_parameters(
    tq: taskq.TaskQueue, producer: taskq.TaskQueue, rc: redis.Redis
) -> None:
    @tq.task(name="resize", queue="images")
    def resize(path: str, width: int = 100, *, crop: bool = False) -> None: ...

    with tq.start_worker(queues=["elsewhere"]):
        wait_until(lambda: "resize" in producer.registered_tasks(), what="the worker's registry")
    before = rc.dbsize()
    for args, kwargs, word in [
        ((), {}, "missing required arguments: path"),
        (("a", 1, True, "extra"), {}, "at most 3"),
        (("a",), {"path": "b"}, "given twice"),
        (("a",), {"height": 5}, "no parameter 'height'"),
    ]:
        with pytest.raises(taskq.InvalidArguments, match=word):
            producer.enqueue("resize", args=args, kwargs=kwargs)
    assert rc.dbsize() == before  # refused before anything was written
    assert producer.get(producer.enqueue("resize", args=["a"], kwargs={"crop": True}).id).queue == "images"


def test_unknown_name_is_refused_and_writes_nothing(producer: taskq.TaskQueue, rc: redis.Redis) -> None:
    with pytest.raises(taskq.UnknownTaskName, match="force=True"):
        producer.enqueue("nobody.runs.this")
    with pytest.raises(taskq.UnknownTaskName):
        producer.enqueue_many([{"name": "nobody.runs.this"}])
    assert rc.dbsize() == 0


def test_force_enqueues_an_unknown_name(producer: taskq.TaskQueue) -> None:
    handle = producer.enqueue("nobody.runs.this", args=[1], force=True, queue="later")
    (many,) = producer.enqueue_many([{"name": "other", "force": True}])
    assert producer.get(handle.id).queue == "later"
    assert producer.get(many.id).queue == producer.default_queue


def test_forced_enqueues_of_an_unknown_name_read_the_registry_once_per_cache_period(
    producer: taskq.TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    registered_tasks = type(producer.ops).registered_tasks

    def counted(ops: object) -> object:
        reads.append(1)
        return registered_tasks(ops)  # type: ignore[arg-type]

    monkeypatch.setattr(type(producer.ops), "registered_tasks", counted)
    producer.enqueue("nobody.runs.this", force=True)
    assert len(reads) == 1
    producer._published_at = time.monotonic() + 3600  # the copy just read stays fresh (no clock in the test)
    for _ in range(4):
        producer.enqueue("nobody.runs.this", force=True)
    assert len(reads) == 1  # a fresh copy that lacks the name is trusted when nothing is refused
    with pytest.raises(taskq.UnknownTaskName):
        producer.enqueue("nobody.runs.this")  # without force an unknown name still reads afresh
    assert len(reads) == 2
    producer._published_at = -3600.0  # an old copy is read again, forced or not
    producer.enqueue("nobody.runs.this", force=True)
    assert len(reads) == 3


def test_a_name_published_after_the_first_refusal_is_found(tq: taskq.TaskQueue, producer: taskq.TaskQueue) -> None:
    @tq.task(queue="late")
    def late() -> None: ...

    with pytest.raises(taskq.UnknownTaskName):
        producer.enqueue(late.name)
    with tq.start_worker(queues=["late"]):
        wait_until(lambda: late.name in producer.registered_tasks(), what="the worker's registry")
    assert producer.get(producer.enqueue(late.name).id).queue == "late"


async def test_async_client_enqueues_by_published_name(tq: taskq.TaskQueue, redis_url: str) -> None:
    @tq.task(queue="emails", priority=8)
    def notify() -> None: ...

    with tq.start_worker(queues=["elsewhere"]):  # it publishes, but does not take the task
        async with taskq.AsyncTaskQueue(redis_url) as client:
            handle = await client.enqueue(notify.name)
            task = await client.get(handle.id)
            assert (task.queue, task.priority) == ("emails", 8)
            with pytest.raises(taskq.UnknownTaskName):
                await client.enqueue("nobody.runs.this")
            assert set(await client.registered_tasks()) == {notify.name}


def test_old_entries_are_forgotten(producer: taskq.TaskQueue, rc: redis.Redis) -> None:
    definition = make_task_def(
        lambda: None, name="old", queue="q", priority=None, max_retries=0, timeout_s=None, backoff=None,
        result_ttl_s=None,
    )  # fmt: skip
    server_now_ms = int(rc.time()[0]) * 1000
    key = GlobalKeys().tasks
    rc.hset(key, "old", definition.published("w", server_now_ms - REGISTRY_RETENTION_MS - 60_000))
    rc.hset(key, "fresh", definition.published("w", server_now_ms))
    assert set(producer.registered_tasks()) == {"fresh"}
    assert rc.hkeys(key) == ["fresh"]


def test_parameters_schema() -> None:
    def fn(a: int, b: str, *, c: float = 1.5, d: list[int] | None = None, e: bool = False) -> None: ...

    schema = parameters_schema(fn, make_task_def(
        fn, name=None, queue="q", priority=None, max_retries=0, timeout_s=None, backoff=None, result_ttl_s=None
    ).signature)  # fmt: skip
    assert schema == {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "string"},
            "c": {"type": "number", "default": 1.5},
            "d": {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}], "default": None},
            "e": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
        "required": ["a", "b"],
    }
    assert json.loads(json.dumps(schema)) == schema

    def loose(*args: object, **kwargs: object) -> None: ...

    assert parameters_schema(loose, None) == {"type": "object"}
