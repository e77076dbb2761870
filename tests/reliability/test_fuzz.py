"""Fuzzing the producer's entry points and the CLI's options (issue 17): whatever the input,
a call either works or raises a typed error (under ``taskq.TaskqError``), never anything else;
a refused call writes nothing; the CLI answers with an exit code and at most a line, never a
traceback. Hypothesis draws hostile values: wrong types, NaN and infinities, huge numbers,
odd strings (braces, spaces, control characters, lone surrogates, long ones)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import taskq
from taskq.cli import app

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

odd_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "{q}", "a b", "a\nb", "\x00", "\ud800", "é" * 3, "x" * 300, "default", "-1", "1e400"]),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 10, 11, -0.0, 1e-9, 0.0004, math.nan, math.inf, 2**63]),
)
hostile = st.one_of(st.none(), st.booleans(), numbers, odd_text, st.lists(st.integers(), max_size=3),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(object()),
                    st.just(b"bytes"))  # fmt: skip
json_ish = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, odd_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8,
)
ENQUEUE_OPTIONS = ("queue", "priority", "delay_s", "eta", "idempotency_key", "meta", "max_retries", "timeout_s",
                   "result_ttl_s")  # fmt: skip


def keys_of(rc: redis.Redis) -> dict[str, Any]:
    return {k: rc.dump(k) for k in sorted(rc.scan_iter(count=1000))}


@pytest.fixture
def fresh(tq: taskq.TaskQueue, rc: redis.Redis) -> Iterator[Callable[[], dict[str, Any]]]:
    """Empties the database (and the client's caches of it) before each example; returns its keys."""

    def reset() -> dict[str, Any]:
        rc.flushall()
        tq._known_queues.clear()
        return keys_of(rc)

    yield reset


def refused_cleanly(call: Callable[[], Any], rc: redis.Redis, before: dict[str, Any]) -> bool:
    """Run ``call``: True if it worked; a typed error must leave the database as it was."""
    try:
        call()
    except taskq.TaskqError:
        assert keys_of(rc) == before, "a refused call wrote something"
        return False
    return True


@FUZZ
@given(name=st.one_of(st.sampled_from(["fuzz.known", "fuzz.other"]), odd_text, hostile), args=json_ish | hostile,
       kwargs=json_ish | hostile, options=st.dictionaries(st.sampled_from(ENQUEUE_OPTIONS), hostile | json_ish),
       force=st.booleans())  # fmt: skip
def test_enqueue(
    tq: taskq.TaskQueue, rc: redis.Redis, fresh: Callable[[], dict[str, Any]],
    name: Any, args: Any, kwargs: Any, options: dict[str, Any], force: bool,
) -> None:  # fmt: skip
    if "fuzz.known" not in tq.registry:

        @tq.task(name="fuzz.known")
        def known(a: int = 0, b: str = "") -> None: ...

    before = fresh()
    refused_cleanly(lambda: tq.enqueue(name, args, kwargs, force=force, **options), rc, before)
    before = fresh()
    items = [{"name": name, "args": args, "kwargs": kwargs, "force": force, **options}, {"name": "fuzz.known"}]
    refused_cleanly(lambda: tq.enqueue_many(items), rc, before)


def short(value: Any) -> Any:
    """``value``, but a long wait (nothing runs the task; None waits for ever) made 10 ms: the
    test is of the refusals."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return 0.01 if value is None or (number and value > 0.05) else value


@pytest.mark.parametrize("text", ["\ud800", "default:\ud800", "a}b", ""])
def test_ids_that_are_not_ids_are_typed_errors(tq: taskq.TaskQueue, text: str) -> None:
    # A lone surrogate cannot even be encoded for Redis (found by the fuzz test below).
    with pytest.raises(taskq.TaskNotFound):
        tq.get(text)
    with pytest.raises(taskq.TaskNotFound):
        tq.cancel(text)
    with pytest.raises(taskq.WorkflowNotFound):
        tq.workflow(text)
    with pytest.raises(taskq.WorkflowNotFound):
        tq.cancel_workflow(text)


@pytest.mark.parametrize("text", ["\ud800", "default:\ud800"])
def test_dead_letter_ids_redis_cannot_take_are_refused(tq: taskq.TaskQueue, text: str) -> None:
    with pytest.raises(taskq.InvalidOption, match="ids"):
        tq.dead_letters("default").purge(ids=[text])
    with pytest.raises(taskq.InvalidOption, match="ids"):
        tq.dead_letters("default").requeue(ids=[text])


@FUZZ
@given(value=hostile | json_ish, other=hostile)
def test_reads_and_admin_calls(
    tq: taskq.TaskQueue, rc: redis.Redis, fresh: Callable[[], dict[str, Any]], value: Any, other: Any
) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: tq.get(value),
        lambda: tq.cancel(value),
        lambda: tq.handle(value).status,
        lambda: tq.stats(value),
        lambda: tq.configure_queue(value, aging_s=other),
        lambda: tq.configure_queue("default", default_priority=value),
        lambda: tq.dead_letters(value).list(limit=other),
        lambda: tq.dead_letters("default").purge(name=value, error_type=other),
        lambda: tq.snapshot(value),
        lambda: list(tq.events(value, since="0", follow=False)),
        lambda: tq.handle("default:0123456789abcdef").result(timeout_s=short(value)),
        lambda: tq.list_tasks("default", value),
        lambda: tq.list_tasks("default", "queued", cursor=value, limit=other),
        lambda: list(tq.events(["default"], since=value, follow=False)),
        lambda: tq.dead_letters("default").requeue(ids=[value, other]),
        lambda: tq.dead_letters("default").purge(ids=[value]),
        lambda: tq.workflow(value),
        lambda: tq.cancel_workflow(value),
    ]
    for call in calls:
        before = fresh()
        refused_cleanly(call, rc, before)


@FUZZ
@given(setting=st.sampled_from(["prefix", "default_queue", "events_maxlen", "events_sample", "max_payload_bytes",
                                "result_ttl_s", "dead_ttl_s", "telemetry", "events"]), value=hostile)  # fmt: skip
def test_client_settings(redis_url: str, setting: str, value: Any) -> None:
    """A hostile setting is taken or refused with a typed error that says why; nothing else."""
    try:
        client = taskq.TaskQueue(redis_url, **{setting: value})
    except taskq.ValidationError as exc:
        assert str(exc), f"{setting}={value!r} was refused without a reason"
    else:
        client.close()


@FUZZ
@given(option=st.sampled_from(["concurrency", "lease_s", "heartbeat_s", "maintenance_s", "idle_poll_s", "grace_s",
                               "threads", "worker_id", "queues"]), value=hostile)  # fmt: skip
def test_worker_settings(tq: taskq.TaskQueue, option: str, value: Any) -> None:
    """As test_client_settings, for a worker's options."""
    try:
        taskq.Worker(tq, **{option: value})
    except taskq.ValidationError as exc:
        assert str(exc), f"{option}={value!r} was refused without a reason"


CLI_OPTIONS = ("--args", "--kwargs", "--queue", "--priority", "--delay-s", "--idempotency-key", "--max-retries",
               "--timeout-s")  # fmt: skip
runner = CliRunner()


@FUZZ
@given(name=odd_text, options=st.dictionaries(st.sampled_from(CLI_OPTIONS), odd_text | numbers.map(str)),
       force=st.booleans())  # fmt: skip
def test_cli_enqueue_options(
    redis_url: str, rc: redis.Redis, fresh: Callable[[], dict[str, Any]], name: str, options: dict[str, str],
    force: bool,
) -> None:  # fmt: skip
    argv = (
        ["--url", redis_url, "enqueue", "--", name] if name.startswith("-") else ["--url", redis_url, "enqueue", name]
    )
    for option, value in options.items():
        argv[3:3] = [option, value]
    if force:
        argv.insert(3, "--force")
    before = fresh()
    result = runner.invoke(app, argv)
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code:
        assert keys_of(rc) == before, "a refused command wrote something"


@FUZZ
@given(command=st.sampled_from([["stats", "-q"], ["events", "-q"], ["events", "--since"], ["events", "--last"],
                                ["task", "show"], ["task", "cancel"], ["dlq", "list", "-q"], ["dlq", "requeue", "-q"],
                                ["dlq", "purge", "--name"], ["stats", "--interval-s"], ["metrics", "-q"]]),
       value=odd_text | numbers.map(str))  # fmt: skip
def test_cli_options(redis_url: str, command: list[str], value: str) -> None:
    result = runner.invoke(app, ["--url", redis_url, *command, value], catch_exceptions=True)
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
