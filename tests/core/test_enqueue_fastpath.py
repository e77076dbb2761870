"""The single-enqueue fast path (issue 14): the precomputed argument binder, the one plan run
without a flow when nothing is read first, the cached script head, the JSON encoder and the
cached pid digits of task ids. Each shortcut must decide exactly as the general path: every
check still raises its typed error with nothing written, and the caches follow a changed
task definition, queue settings and shard count."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

import taskq
from taskq.flows import enqueue_now
from taskq.keys import queue_of_task_id
from taskq.registry import PlainBinder, TaskDef, make_task_def
from taskq.shards import SHARDS_CACHE_S, sub_queues
from taskq.task import _JSON, dumps, new_task_id

# -- the binder agrees with inspect.Signature.bind -------------------------------------


def f_plain(a: int, b: int, c: int = 3) -> None: ...
def f_none() -> None: ...
def f_kwonly(a: int, *, b: int, c: int = 1) -> None: ...
def f_varargs(a: int, *args: int, b: int = 2) -> None: ...
def f_varkw(a: int, b: int = 1, **kw: int) -> None: ...
def f_all(a: int, b: int = 1, *args: int, c: int, d: int = 4, **kw: int) -> None: ...
def f_posonly(a: int, /, b: int) -> None: ...


SIGNED = [f_plain, f_none, f_kwonly, f_varargs, f_varkw, f_all]
NAMES = ["a", "b", "c", "d", "args", "kw", "x"]


def _binds(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[Any, Any]) -> bool:
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("fn", SIGNED, ids=lambda f: f.__name__)
def test_binder_says_yes_exactly_where_bind_binds(fn: Callable[..., Any]) -> None:
    signature = inspect.signature(fn)
    binder = PlainBinder.of(signature)
    assert binder is not None
    calls = 0
    for n in range(5):
        for k in range(len(NAMES) + 1):
            for keys in itertools.combinations(NAMES, k):
                args, kwargs = tuple(range(n)), dict.fromkeys(keys, 0)
                assert binder.fits(args, kwargs) == _binds(signature, args, kwargs), (fn.__name__, args, kwargs)
                calls += 1
    assert calls == 5 * 2 ** len(NAMES)


def test_binder_leaves_non_text_keywords_and_positional_only_to_bind() -> None:
    binder = PlainBinder.of(inspect.signature(f_varkw))
    assert binder is not None and not binder.fits((1,), {1: 2})  # bind refuses it: "keywords must be strings"
    assert PlainBinder.of(inspect.signature(f_posonly)) is None


def _def(fn: Callable[..., Any]) -> TaskDef:
    return make_task_def(
        fn, name="t", queue="default", priority=None, max_retries=3, timeout_s=None, backoff=None, result_ttl_s=None
    )


@pytest.mark.parametrize("fn", [*SIGNED, f_posonly], ids=lambda f: f.__name__)
def test_check_arguments_raises_binds_own_message(fn: Callable[..., Any]) -> None:
    definition = _def(fn)
    signature = inspect.signature(fn)
    for n in range(4):
        for keys in ([], ["a"], ["b"], ["x"], ["b", "c"]):
            args, kwargs = tuple(range(n)), dict.fromkeys(keys, 0)
            try:
                signature.bind(*args, **kwargs)
                expected = None
            except TypeError as exc:
                expected = f"task 't': {exc}"
            if expected is None:
                definition.check_arguments(args, kwargs)
            else:
                with pytest.raises(taskq.InvalidArguments) as raised:
                    definition.check_arguments(args, kwargs)
                assert str(raised.value) == expected


def test_binder_follows_the_signature() -> None:
    """A definition made again (another function, or its signature replaced) gets a new binder."""
    definition = _def(f_plain)
    definition.check_arguments((1, 2), {})
    changed = dataclasses.replace(definition, signature=inspect.signature(f_kwonly))
    assert changed.binder == PlainBinder.of(inspect.signature(f_kwonly)) != definition.binder
    with pytest.raises(taskq.InvalidArguments):
        changed.check_arguments((1, 2), {})
    assert dataclasses.replace(definition, signature=None).binder is None


# -- every check still fires on the fast path, nothing written -------------------------


def _noop(x: int) -> None:
    return None


BAD: list[tuple[str, type[Exception], tuple[Any, ...], dict[str, Any]]] = [
    ("missing argument", taskq.InvalidArguments, (), {}),
    ("too many arguments", taskq.InvalidArguments, (1, 2), {}),
    ("unknown keyword", taskq.InvalidArguments, (), {"kwargs": {"y": 1}}),
    ("args not a sequence", taskq.NotSerializable, (), {"args": 5}),
    ("not JSON", taskq.NotSerializable, (object(),), {}),
    ("NaN", taskq.NotSerializable, (float("nan"),), {}),
    ("lone surrogate", taskq.NotSerializable, ("\ud800",), {}),
    ("too large", taskq.PayloadTooLarge, ("x" * 2000,), {}),
    ("priority", taskq.InvalidPriority, (1,), {"priority": 11}),
    ("priority type", taskq.InvalidPriority, (1,), {"priority": "5"}),
    ("delay", taskq.InvalidDelay, (1,), {"delay_s": -1}),
    ("eta and delay", taskq.InvalidDelay, (1,), {"delay_s": 1, "eta": time.time()}),
    ("queue name", taskq.InvalidQueueName, (1,), {"queue": ""}),
    ("queue type", taskq.InvalidQueueName, (1,), {"queue": 7}),
    ("idempotency key", taskq.InvalidOption, (1,), {"idempotency_key": ""}),
    ("meta key", taskq.InvalidOption, (1,), {"meta": {"bad key": "v"}}),
    ("meta value", taskq.InvalidOption, (1,), {"meta": {"k": 1}}),
    ("max_retries", taskq.InvalidOption, (1,), {"max_retries": -1}),
    ("timeout", taskq.InvalidOption, (1,), {"timeout_s": 0}),
    ("result ttl", taskq.InvalidOption, (1,), {"result_ttl_s": 1.5}),
]


def _written(rc: redis.Redis) -> dict[bytes, Any]:
    """Every key and its content (a refused enqueue writes nothing at all)."""
    return {key: rc.dump(key) for key in rc.keys("*")}


def _call(args: tuple[Any, ...], options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    options = dict(options)
    return options.pop("args", args), options


@pytest.mark.parametrize(("what", "error", "args", "options"), BAD, ids=[b[0] for b in BAD])
def test_each_check_fires_on_the_fast_path(
    redis_url: str, rc: redis.Redis, what: str, error: type[Exception], args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    with taskq.TaskQueue(redis_url, max_payload_bytes=1000) as tq:
        tq.task(name="noop")(_noop)
        first = tq.enqueue("noop", (0,))  # the queue is registered and its shard count fresh
        spec = tq._spec("noop", (1,))
        assert enqueue_now(tq.ops, [spec], tq._known_queues) is not None  # the fast path is the one taken
        before = _written(rc)
        call_args, call_options = _call(args, options)
        with pytest.raises(error):
            tq.enqueue("noop", call_args, **call_options)
        assert _written(rc) == before
        assert tq.stats().queued == 1 and tq.get(first.id).args == [0]


@pytest.mark.parametrize(("what", "error", "args", "options"), BAD, ids=[b[0] for b in BAD])
async def test_each_check_fires_on_the_async_fast_path(
    redis_url: str, rc: redis.Redis, what: str, error: type[Exception], args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    async with taskq.AsyncTaskQueue(redis_url, max_payload_bytes=1000) as aq:
        aq.task(name="noop")(_noop)
        await aq.enqueue("noop", (0,))
        before = _written(rc)
        call_args, call_options = _call(args, options)
        with pytest.raises(error):
            await aq.enqueue("noop", call_args, **call_options)
        assert _written(rc) == before
        assert aq._direct == 0 and not aq._unsent and not aq._senders


async def test_async_direct_send_writes_each_task(redis_url: str, rc: redis.Redis) -> None:
    """Enqueues awaited one after another are sent by their callers (no sender task)."""
    async with taskq.AsyncTaskQueue(redis_url) as aq:
        task = aq.task(name="noop")(_noop)
        handles = [await task.enqueue(i) for i in range(20)]
        assert not aq._senders and aq._direct == 0
        assert [(await h.info()).args for h in handles] == [[i] for i in range(20)]
        assert (await aq.stats()).queued == 20


# -- the caches follow what they were made from --------------------------------------


def test_shard_count_change_is_followed_once_the_cached_copy_expires(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url) as tq, taskq.TaskQueue(redis_url) as admin:
        tq.enqueue("t", force=True)
        spec = tq._spec("t", force=True)
        assert enqueue_now(tq.ops, [spec], tq._known_queues) is not None
        admin.configure_queue("default", shards=4)
        # while the copy is fresh the producer keeps the old count (as before: SHARDS_CACHE_S) ...
        count, read_at = tq._known_queues._shards["default"]
        assert count == 1
        tq._known_queues._shards["default"] = (count, read_at - SHARDS_CACHE_S)  # ... which has now passed
        assert enqueue_now(tq.ops, [spec], tq._known_queues) is None  # the flow reads the count first
        handle = tq.enqueue("t", force=True)
        assert queue_of_task_id(handle.id) in sub_queues("default", 4)
        assert tq._known_queues.shards("default") == 4
        assert enqueue_now(tq.ops, [tq._spec("t", force=True)], tq._known_queues) is not None


def test_new_queue_is_registered_then_fast(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url) as tq:
        spec = tq._spec("t", queue="fresh", force=True)
        assert enqueue_now(tq.ops, [spec], tq._known_queues) is None
        tq.enqueue("t", queue="fresh", force=True)
        assert "fresh" in tq.queues()
        assert enqueue_now(tq.ops, [tq._spec("t", queue="fresh", force=True)], tq._known_queues) is not None


def test_script_head_is_per_settings(redis_url: str, rc: redis.Redis) -> None:
    """Clients with other prefixes or telemetry settings in one process each get their own
    script arguments."""
    with (
        taskq.TaskQueue(redis_url) as plain,
        taskq.TaskQueue(redis_url, prefix="other", events=False, telemetry=False) as other,
    ):
        a = plain.enqueue("t", force=True)
        b = other.enqueue("t", force=True)
        head_a = plain.ops.enqueue([plain._spec("t", force=True)]).commands[0].args
        head_b = other.ops.enqueue([other._spec("t", force=True)]).commands[0].args
        assert head_a[3].startswith("taskq") and head_b[3].startswith("other")
        assert plain.ops.tel in head_a and other.ops.tel in head_b and plain.ops.tel != other.ops.tel
        assert plain.get(a.id).name == other.get(b.id).name == "t"
        assert rc.exists(other.ops.queue_keys("default").task(b.id))
        assert not rc.exists(plain.ops.queue_keys("default").task(b.id))


def test_registered_again_with_another_signature_is_checked_by_the_new_one(redis_url: str) -> None:
    with taskq.TaskQueue(redis_url) as one, taskq.TaskQueue(redis_url) as two:
        one.task(name="t")(_noop)
        two.task(name="t")(f_kwonly)
        one.enqueue("t", (1,))
        with pytest.raises(taskq.InvalidArguments):
            two.enqueue("t", (1,))  # b is keyword-only and required
        two.enqueue("t", (1,), {"b": 2})


# -- JSON and task ids ---------------------------------------------------------------


VALUES: list[Any] = [
    [],
    {},
    [1, 2.5, -0.0, 1e300, True, None, "é", "\u2028", "\x00"],
    {"a": [1, {"b": None}], "é": "x"},
    [[[]]],
    [2**70],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_dumps_is_the_encoder_output(value: Any) -> None:
    assert dumps(value, "args") == _JSON.encode(value)
    assert json.loads(dumps(value, "args")) == value


def test_dumps_after_a_failure_sees_no_false_cycle() -> None:
    """Each call has a fresh cycle memo: an encode that failed half way leaves nothing behind."""
    shared = [1, 2]
    with pytest.raises(taskq.NotSerializable):
        dumps([shared, object()], "args")
    assert dumps([shared, shared], "args") == "[[1,2],[1,2]]"
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(taskq.NotSerializable, match="Circular"):
        dumps(loop, "args")
    assert dumps([shared], "args") == "[[1,2]]"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_task_id_pid_digits_follow_a_fork() -> None:
    parent = new_task_id("q")
    assert parent[-2:] == f"{os.getpid() % 256:02x}"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own digits
        os.write(write, new_task_id("q").encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 200).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child[-2:] == f"{pid % 256:02x}"
