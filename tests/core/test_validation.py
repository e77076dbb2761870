"""Bad input is refused with a typed error that says what to do, and nothing is written."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

import taskq
from taskq.keys import check_queue_name, queue_of_task_id


@pytest.fixture
def empty_db(tq: taskq.TaskQueue, rc: redis.Redis) -> Iterator[None]:
    """Assert the test wrote nothing at all to Redis."""
    assert rc.dbsize() == 0
    yield
    assert rc.dbsize() == 0, sorted(rc.scan_iter())


def refused(exc_type: type[Exception], fn: Callable[[], Any], *words: str) -> Exception:
    """``fn()`` raises ``exc_type`` whose message holds every one of ``words``."""
    with pytest.raises(exc_type) as info:
        fn()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return info.value


# -- priority -----------------------------------------------------------------------


@pytest.mark.parametrize("priority", [0, 11, -1, 5.0, "5", True, 10**20])
def test_bad_priority_is_refused_and_never_clamped(tq: taskq.TaskQueue, empty_db: None, priority: Any) -> None:
    err = refused(taskq.InvalidPriority, lambda: tq.enqueue("t", force=True, priority=priority), "1..10")
    assert isinstance(err, taskq.ValidationError) and isinstance(err, ValueError)


@pytest.mark.parametrize("priority", [1, 10])
def test_priority_bounds_are_accepted(tq: taskq.TaskQueue, priority: int) -> None:
    assert tq.get(tq.enqueue("t", force=True, priority=priority).id).priority == priority


def test_bad_priority_on_the_decorator(tq: taskq.TaskQueue, empty_db: None) -> None:
    refused(taskq.InvalidPriority, lambda: tq.task(priority=0)(lambda: None), "1..10")


def test_bad_priority_on_a_task_function_enqueue(tq: taskq.TaskQueue, empty_db: None) -> None:
    @tq.task
    def job(x: int) -> int:
        return x

    refused(taskq.InvalidPriority, lambda: job.enqueue(1, priority=11), "1..10", "never clamped")


# -- queue names --------------------------------------------------------------------


@pytest.mark.parametrize(
    "queue",
    ["a{b}", "{q}", "a b", " q", "q\n", "q\t", "a:b", "", "x" * 65, "-q", ".q", "é", 5],
)
def test_bad_queue_name_is_refused(tq: taskq.TaskQueue, empty_db: None, queue: Any) -> None:
    refused(
        taskq.InvalidQueueName, lambda: tq.enqueue("t", force=True, queue=queue), "1-64 characters", "letters, digits"
    )


@pytest.mark.parametrize("queue", ["q", "x" * 64, "emails.v2", "a-b_c", "0"])
def test_good_queue_names(queue: str) -> None:
    assert check_queue_name(queue) == queue


def test_bad_queue_name_everywhere_a_queue_is_named(tq: taskq.TaskQueue, empty_db: None) -> None:
    refused(taskq.InvalidQueueName, lambda: tq.task(queue="a b")(lambda: None), "1-64")
    refused(taskq.InvalidQueueName, lambda: tq.dead_letters("a:b"), "1-64")
    refused(taskq.InvalidQueueName, lambda: tq.stats("{x}"), "1-64")
    refused(taskq.InvalidQueueName, lambda: tq.configure_queue("", aging_s=1.0), "1-64")
    refused(taskq.InvalidQueueName, lambda: taskq.TaskQueue(tq.url, default_queue="a b"), "1-64")


# -- payload ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ([object()], None),
        ([{1, 2}], None),
        ([b"bytes"], None),
        ([math.nan], None),
        ([math.inf], None),
        ([], {"x": object()}),
        ([], {"x": [1, {"deep": {1, 2}}]}),
        ([], {1: "non-string key"}),
        (["lone surrogate \ud800"], None),
        ([], {"\udfff": 1}),
        ("not a list", None),
        (42, None),
    ],
)
def test_non_json_payload_is_refused(tq: taskq.TaskQueue, empty_db: None, args: Any, kwargs: Any) -> None:
    err = refused(taskq.NotSerializable, lambda: tq.enqueue("t", force=True, args=args, kwargs=kwargs))
    assert any(word in str(err) for word in ("JSON", "list or tuple", "string keys"))


def test_non_json_message_says_what_to_pass(tq: taskq.TaskQueue, empty_db: None) -> None:
    refused(
        taskq.NotSerializable,
        lambda: tq.enqueue("t", force=True, args=[object()]),
        "JSON",
        "never pickles",
        "plain data",
    )


def test_payload_over_the_limit_is_refused(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url, max_payload_bytes=100) as small:
        refused(
            taskq.PayloadTooLarge,
            lambda: small.enqueue("t", force=True, args=["x" * 100]),
            "over the limit of 100",
            "pass a reference",
            "max_payload_bytes",
        )
        refused(taskq.PayloadTooLarge, lambda: small.enqueue("t", force=True, kwargs={"k": "é" * 50}), "100")
        assert rc.dbsize() == 0
        small.enqueue("t", force=True, args=["x" * 50])  # under the limit: fine


def test_max_payload_bytes_must_be_positive(redis_url: str) -> None:
    refused(taskq.InvalidOption, lambda: taskq.TaskQueue(redis_url, max_payload_bytes=0), "max_payload_bytes")


def test_retention_settings_are_checked(redis_url: str) -> None:
    refused(taskq.InvalidOption, lambda: taskq.TaskQueue(redis_url, dead_ttl_s=0), "dead_ttl_s", ">= 1")
    refused(taskq.InvalidOption, lambda: taskq.TaskQueue(redis_url, result_ttl_s=-1), "result_ttl_s")


# -- delays and options -------------------------------------------------------------


@pytest.mark.parametrize("delay", [-1, -0.001, math.inf, math.nan, "1", True, 1e300, 11 * 365 * 86400])
def test_bad_delay_is_refused(tq: taskq.TaskQueue, empty_db: None, delay: Any) -> None:
    refused(taskq.InvalidDelay, lambda: tq.enqueue("t", force=True, delay_s=delay), "delay_s")


def test_eta_too_far_ahead_is_refused(tq: taskq.TaskQueue, empty_db: None) -> None:
    refused(taskq.InvalidDelay, lambda: tq.enqueue("t", force=True, eta=1e300), "at most", "ten years")


def test_delay_and_eta_together_is_refused(tq: taskq.TaskQueue, empty_db: None) -> None:
    refused(taskq.InvalidDelay, lambda: tq.enqueue("t", force=True, delay_s=5, eta=2e9), "either delay_s or eta")


@pytest.mark.parametrize("eta", [math.inf, math.nan, "tomorrow", True])
def test_bad_eta_is_refused(tq: taskq.TaskQueue, empty_db: None, eta: Any) -> None:
    refused(taskq.InvalidDelay, lambda: tq.enqueue("t", force=True, eta=eta), "Unix timestamp")


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"timeout_s": math.inf}, "timeout_s"),
        ({"result_ttl_s": -1}, "result_ttl_s"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": 7}, "idempotency_key"),
        ({"idempotency_key": "k" * 513}, "512 bytes"),
        ({"idempotency_key": "é" * 257}, "512 bytes"),
        ({"idempotency_key": "\ud800"}, "UTF-8"),
    ],
)
def test_bad_options_are_refused(tq: taskq.TaskQueue, empty_db: None, options: dict[str, Any], word: str) -> None:
    refused(taskq.InvalidOption, lambda: tq.enqueue("t", force=True, **options), word)


def test_bad_task_name_is_refused(tq: taskq.TaskQueue, empty_db: None) -> None:
    refused(taskq.InvalidOption, lambda: tq.enqueue(""), "task name")
    refused(taskq.InvalidOption, lambda: tq.enqueue("n" * 201), "task name")
    refused(taskq.InvalidOption, lambda: tq.enqueue("bad\ud800name"), "task name")


def test_bad_aging_window_is_refused(tq: taskq.TaskQueue, empty_db: None) -> None:
    refused(taskq.InvalidOption, lambda: tq.configure_queue("q", aging_s=0), "aging_s", "> 0")
    refused(taskq.InvalidOption, lambda: tq.configure_queue("q", aging_s=-1.0), "aging_s")
    refused(taskq.InvalidOption, lambda: tq.configure_queue("q", aging_s=1e9), "aging_s", "at most")


@pytest.mark.parametrize(
    "kwargs",
    [{"base_s": -1}, {"min_s": 5, "cap_s": 1}, {"jitter": 1.5}, {"jitter": -0.1}, {"min_s": -1}],
)
def test_bad_backoff_is_refused(kwargs: dict[str, float]) -> None:
    refused(taskq.InvalidOption, lambda: taskq.Backoff(**kwargs), "backoff")


# -- ids ----------------------------------------------------------------------------


def test_unknown_task_id(tq: taskq.TaskQueue, empty_db: None) -> None:
    unknown = "default:0123456789abcdef"
    refused(taskq.TaskNotFound, lambda: tq.get(unknown), unknown, "never existed", "expired")
    refused(taskq.TaskNotFound, lambda: tq.cancel(unknown), unknown, "never existed", "expired")
    refused(taskq.TaskNotFound, lambda: tq.handle(unknown).result(timeout_s=0.01), unknown)
    assert isinstance(taskq.TaskNotFound("x"), LookupError)


@pytest.mark.parametrize("bad_id", ["", "nocolon", ":abc", "default:", "a b:123", "{q}:123", "q\n:1"])
def test_malformed_task_id(tq: taskq.TaskQueue, empty_db: None, bad_id: str) -> None:
    refused(taskq.TaskNotFound, lambda: tq.get(bad_id), "not a taskq task id", "queue:hex")
    refused(taskq.TaskNotFound, lambda: tq.cancel(bad_id), "not a taskq task id")
    refused(taskq.TaskNotFound, lambda: queue_of_task_id(bad_id), "queue:hex")


def test_task_ids_name_their_queue(tq: taskq.TaskQueue) -> None:
    handle = tq.enqueue("t", force=True, queue="emails")
    assert queue_of_task_id(handle.id) == "emails"
    assert handle.id.startswith("emails:")


# -- the registry -------------------------------------------------------------------


def test_unknown_task_name_when_the_registry_is_known(tq: taskq.TaskQueue, empty_db: None) -> None:
    @tq.task(name="send_email")
    def send(to: str) -> None: ...

    err = refused(taskq.UnknownTaskName, lambda: tq.enqueue("send_mail", args=["a"]), "send_mail", "send_email")
    assert isinstance(err, LookupError)


def test_any_task_name_with_force(tq: taskq.TaskQueue) -> None:
    """A producer may enqueue a name no worker has published yet (another service's tasks) with force."""
    refused(taskq.UnknownTaskName, lambda: tq.enqueue("elsewhere.task"), "elsewhere.task", "force=True")
    assert tq.get(tq.enqueue("elsewhere.task", force=True).id).name == "elsewhere.task"


def test_wrong_arguments_for_a_registered_task(tq: taskq.TaskQueue, empty_db: None) -> None:
    @tq.task(name="add")
    def add(a: int, b: int = 0) -> int:
        return a + b

    refused(taskq.InvalidArguments, lambda: add.enqueue(), "'add'", "missing", "'a'")
    refused(taskq.InvalidArguments, lambda: add.enqueue(1, 2, 3), "'add'", "too many")
    refused(taskq.InvalidArguments, lambda: add.enqueue(1, c=3), "'add'", "'c'")
    refused(taskq.InvalidArguments, lambda: tq.enqueue("add", args=[1], kwargs={"a": 2}), "multiple values")
    assert add(2, 3) == 5  # calling it directly still runs it here


def test_task_parameter_named_like_an_option_is_refused_at_decoration(tq: taskq.TaskQueue, empty_db: None) -> None:
    def job(x: int, priority: int) -> None: ...

    refused(taskq.InvalidOption, lambda: tq.task(job), "priority", "rename")
    refused(taskq.InvalidOption, lambda: tq.task(queue="q")(job), "priority", "rename")
    assert tq.registry == {}


def test_two_functions_under_one_name_is_refused(tq: taskq.TaskQueue) -> None:
    tq.task(name="same")(lambda: 1)
    refused(taskq.InvalidOption, lambda: tq.task(name="same")(lambda: 2), "'same'", "already registered")


# -- enqueue_many is all or nothing -------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "t", "force": True, "priority": 0},
        {"name": "t", "force": True, "queue": "a b"},
        {"name": "t", "force": True, "args": [object()]},
        {"name": "t", "force": True, "delay_s": -1},
        {"name": "t", "force": True, "colour": "red"},
        {"args": [1]},
    ],
)
def test_enqueue_many_with_one_bad_item_writes_nothing(
    tq: taskq.TaskQueue, empty_db: None, bad: dict[str, Any]
) -> None:
    requests = [{"name": "t", "force": True, "args": [i]} for i in range(5)]
    requests[2] = bad
    with pytest.raises(taskq.ValidationError):
        tq.enqueue_many(requests)


def test_enqueue_many_names_the_bad_item(tq: taskq.TaskQueue, empty_db: None) -> None:
    requests: list[dict[str, Any]] = [{"name": "t", "force": True} for _ in range(5)]
    requests[2] = {"name": "t", "force": True, "colour": "red"}
    refused(taskq.InvalidOption, lambda: tq.enqueue_many(requests), "item 2", "colour")
    requests[2] = {"args": []}
    refused(taskq.InvalidOption, lambda: tq.enqueue_many(requests), "item 2", "'name'")
    requests[2] = ("t", [1])  # type: ignore[assignment]  # a tuple, not a mapping: typed, not a TypeError
    refused(taskq.InvalidOption, lambda: tq.enqueue_many(requests), "item 2", "not a mapping")


def test_enqueue_many_with_an_unknown_registered_name_writes_nothing(tq: taskq.TaskQueue, empty_db: None) -> None:
    tq.task(name="known")(lambda: None)
    with pytest.raises(taskq.UnknownTaskName):
        tq.enqueue_many([{"name": "known"}, {"name": "known"}, {"name": "unknown"}, {"name": "known"}])


# -- NOSCRIPT healing ---------------------------------------------------------------


def test_enqueue_heals_a_flushed_script_cache(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.enqueue("t", force=True)
    rc.script_flush()
    handle = tq.enqueue("t", force=True)
    assert tq.get(handle.id).status is taskq.TaskStatus.QUEUED
    rc.script_flush()
    handles = tq.enqueue_many([{"name": "t", "force": True, "args": [i]} for i in range(5)])  # pipelined: 5 NOSCRIPTs
    assert [tq.get(h.id).args for h in handles] == [[i] for i in range(5)]
    rc.script_flush()
    assert tq.cancel(handle.id) == "cancelled"
    assert tq.stats().queued == 6
