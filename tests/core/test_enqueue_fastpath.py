"""The enqueue fast paths (issue 14): the precomputed argument binder, the one plan run
without a flow when nothing is read first, the cached script head, the JSON encoder, task ids,
TaskSpec's written-out constructor, and enqueue_many's templates (one _spec per name and set of
options, then only each request's own part). Each shortcut must decide exactly as the general
path: every check still raises its typed error with nothing written, the records and replies
are the same, and the caches follow a changed task definition, queue settings and shard count."""

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


# -- enqueue_many's templates: the same specs and records as one _spec per request ----


def _rated(user: str) -> None:
    return None


def _bulk_client(tq: taskq.TaskQueue) -> None:
    tq.task(name="noop")(_noop)
    tq.task(name="kw", queue="other", priority=3, max_retries=7, timeout_s=2.5, result_ttl_s=60)(f_kwonly)
    tq.task(name="rated", rate="5/s", rate_key=lambda user: user)(_rated)


SHARED_META = {"source": "import", "batch": "7"}
MIXED: list[dict[str, Any]] = [
    *({"name": "noop", "args": [i]} for i in range(3)),
    *({"name": "noop", "args": (i,), "queue": "q2", "priority": 9, "meta": {"k": str(i % 2)}} for i in range(4)),
    *({"name": "kw", "args": [i], "kwargs": {"b": i}, "meta": SHARED_META} for i in range(3)),
    *({"name": "kw", "args": [i], "kwargs": {"b": 1}, "delay_s": 30, "idempotency_key": f"k{i}"} for i in range(3)),
    *({"name": "rated", "args": [f"u{i % 2}"]} for i in range(3)),
    *({"name": "forced", "args": [[1, {"x": None}]], "force": True, "max_retries": 0} for _ in range(2)),
    {"name": "noop", "args": [1], "eta": time.time() + 60},
    {"name": "noop", "args": [2], "timeout_s": 0.5, "result_ttl_s": 5},
    {"name": "noop", "args": [3]},
]


def _fields(spec: taskq.task.TaskSpec) -> tuple[Any, ...]:
    """A spec's fields but its id (each spec draws its own) and the eta's delay (read off the clock)."""
    values = dataclasses.astuple(spec)
    return (queue_of_task_id(spec.id), *values[1:6], values[6] // 1000, *values[7:])


def test_bulk_specs_equal_one_spec_per_request(redis_url: str) -> None:
    with taskq.TaskQueue(redis_url) as tq:
        _bulk_client(tq)
        bulk = tq._specs_from_requests(MIXED)
        alone = [tq._spec(**r) for r in MIXED]
        assert [_fields(s) for s in bulk] == [_fields(s) for s in alone]
        assert len({s.id for s in bulk}) == len(MIXED)
        assert [json.loads(s.meta_json or "{}").get("taskq.rate_key") for s in bulk[13:16]] == ["u0", "u1", "u0"]


@pytest.mark.parametrize(
    ("first", "then", "error"),
    [
        ({"priority": 1}, {"priority": True}, taskq.InvalidPriority),
        ({"max_retries": 1}, {"max_retries": 1.0}, taskq.InvalidOption),
        ({"delay_s": 0}, {"delay_s": False}, taskq.InvalidDelay),
        ({"result_ttl_s": 5}, {"result_ttl_s": 5.0}, taskq.InvalidOption),
        ({"meta": {"k": "v"}}, {"meta": {"k": ["v"]}}, taskq.InvalidOption),
        ({"meta": {"k": "v"}}, {"meta": {"k": "v", "bad key": "v"}}, taskq.InvalidOption),
        ({}, {"queue": ""}, taskq.InvalidQueueName),
        ({"queue": "q"}, {"queue": "q", "eta": float("nan")}, taskq.InvalidDelay),
    ],
    ids=["priority True for 1", "1.0 for 1", "False for 0", "5.0 for 5", "meta list", "meta key", "queue", "eta"],
)
def test_a_template_never_passes_other_options(
    redis_url: str, rc: redis.Redis, first: dict[str, Any], then: dict[str, Any], error: type[Exception]
) -> None:
    """Options equal to a template's but not the same objects (or refused outright) are checked
    afresh, and refused with nothing written."""
    with taskq.TaskQueue(redis_url) as tq:
        tq.task(name="noop")(_noop)
        tq.enqueue("noop", (0,), queue="q")
        before = _written(rc)
        requests = [{"name": "noop", "args": [i], **first} for i in range(3)] + [{"name": "noop", "args": [9], **then}]
        with pytest.raises(error):
            tq.enqueue_many(requests)
        assert _written(rc) == before


@pytest.mark.parametrize(("what", "error", "args", "options"), BAD, ids=[b[0] for b in BAD])
def test_each_check_fires_on_a_template(
    redis_url: str, rc: redis.Redis, what: str, error: type[Exception], args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    """The bad request comes after three with its name and options (its template), unless an
    option is the bad part: it raises what _spec raises for it alone, and nothing is written."""
    with taskq.TaskQueue(redis_url, max_payload_bytes=1000) as tq:
        tq.task(name="noop")(_noop)
        tq.enqueue("noop", (0,))
        before = _written(rc)
        call_args, call_options = _call(args, options)
        bad = {"name": "noop", "args": call_args, **call_options}
        same = {k: v for k, v in call_options.items() if k not in ("kwargs", "idempotency_key", "eta")}
        before_bad = [{"name": "noop", "args": [i], **same} for i in range(3)]
        if not _valid(tq, before_bad[0]):
            before_bad = []
        with pytest.raises(error) as raised:
            tq.enqueue_many([*before_bad, bad])
        with pytest.raises(error) as alone:
            tq._spec(**bad)
        assert str(raised.value) == str(alone.value)
        assert _written(rc) == before


def _valid(tq: taskq.TaskQueue, request: dict[str, Any]) -> bool:
    try:
        tq._spec(**request)
    except taskq.TaskqError:
        return False
    return True


def test_bulk_records_and_replies_equal_single_enqueues(redis_url: str, rc: redis.Redis) -> None:
    """The same requests through enqueue_many and through enqueue, on two prefixes: the same
    records field by field, and an idempotency key used twice answers the first task's id."""
    requests = [r for r in MIXED if "eta" not in r]
    requests += [
        {"name": "kw", "args": [7], "kwargs": {"b": 2}, "idempotency_key": "k1"},
        {"name": "noop", "args": [8]},
    ]
    with taskq.TaskQueue(redis_url, prefix="bulk") as bulk, taskq.TaskQueue(redis_url, prefix="one") as one:
        for tq in (bulk, one):
            _bulk_client(tq)
        got = [h.id for h in bulk.enqueue_many(requests)]
        alone = [one.enqueue(r["name"], r.get("args", ()), r.get("kwargs"), **_options(r)).id for r in requests]
        first = next(i for i, r in enumerate(requests) if r.get("idempotency_key") == "k1")
        assert got[-2] == got[first] and alone[-2] == alone[first]  # k1 again: the first task's id

        def record(tq: taskq.TaskQueue, task_id: str) -> dict[str, Any]:
            task = dataclasses.asdict(tq.get(task_id))
            for volatile in ("id", "enqueued_ms", "due_ms"):
                task.pop(volatile)
            return task

        assert [record(bulk, i) for i in got] == [record(one, i) for i in alone]
        assert [queue_of_task_id(i) for i in got] == [queue_of_task_id(i) for i in alone]


def _options(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k not in ("name", "args", "kwargs")}


def test_one_queue_bulk_is_one_call_as_the_grouping_makes_it() -> None:
    """A bulk of one queue (up to MAX_BATCH) is one call with the grouped path's arguments, and
    its reply reads the same: ids at even places; more queues or tasks go as before."""
    from taskq.ops import MAX_BATCH, Operations

    ops = Operations()
    specs = [taskq.task.TaskSpec.build("t", args=[i], queue="a") for i in range(5)]
    plan = ops.enqueue(specs)
    assert [c.args for c in plan.commands] == [ops._enqueue_call("a", specs).args]
    reply = [x for s in specs for x in (s.id, 1)]
    assert plan.parse([reply]) == [s.id for s in specs]
    mixed = [*specs, taskq.task.TaskSpec.build("t", queue="b"), specs[0]]
    assert len(ops.enqueue(mixed).commands) == 2
    many = [taskq.task.TaskSpec.build("t", queue="a") for _ in range(MAX_BATCH + 1)]
    assert [len(c.args) for c in ops.enqueue(many).commands] == [
        len(ops._enqueue_call("a", many[:MAX_BATCH]).args),
        len(ops._enqueue_call("a", many[MAX_BATCH:]).args),
    ]
    assert ops.enqueue([]).commands == []


def test_task_spec_init_takes_the_fields_in_order() -> None:
    """TaskSpec's written-out __init__ sets each slot from the parameter of its name."""
    names = [f.name for f in dataclasses.fields(taskq.task.TaskSpec)]
    assert list(inspect.signature(taskq.task.TaskSpec.__init__).parameters)[1:] == names
    spec = taskq.task.TaskSpec(*names[:10], taskq.task.DEFAULT_BACKOFF, *names[11:])
    assert [getattr(spec, n) for n in names] == [*names[:10], taskq.task.DEFAULT_BACKOFF, *names[11:]]
    assert taskq.task.TaskSpec(**{n: getattr(spec, n) for n in names}) == spec


def test_task_id_digits() -> None:
    """16 hex digits of nanoseconds (strictly increasing), 8 random, 2 of the pid."""
    before = time.time_ns()
    ids = [new_task_id("q") for _ in range(1000)]
    after = time.time_ns() + len(ids)
    stamps = [int(i[2:18], 16) for i in ids]
    assert all(len(i) == 28 and int(i[2:], 16) >= 0 for i in ids)
    assert stamps == sorted(set(stamps)) and before <= stamps[0] and stamps[-1] <= after
    assert len({i[18:26] for i in ids}) > 990 and {i[26:] for i in ids} == {f"{os.getpid() % 256:02x}"}


def test_dumps_names_a_cycle_anywhere() -> None:
    looped: dict[str, Any] = {"a": [1]}
    looped["a"].append(looped)
    with pytest.raises(taskq.NotSerializable, match="Circular"):
        dumps([0, looped], "args")
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):  # as json.dumps: too deep is not a cycle
        dumps(deep, "args")
