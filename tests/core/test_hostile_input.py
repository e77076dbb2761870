"""Hostile input a black-box tester found in the core: each is refused with a typed error
(under :class:`taskq.TaskqError`) and writes nothing, or, for a re-driven task, leaves no stale
failure on the record."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import taskq

TASKQ = str(Path(sys.executable).parent / "taskq")


@pytest.fixture
def empty_db(tq: taskq.TaskQueue, rc: redis.Redis) -> Iterator[None]:
    """Assert the test wrote nothing at all to Redis."""
    assert rc.dbsize() == 0
    yield
    assert rc.dbsize() == 0, sorted(rc.scan_iter())


# -- 1. a sub-millisecond timeout is refused, not stored as "no timeout" -----------------


@pytest.mark.parametrize("timeout_s", [0.0004, 0.0009999, 1e-9])
def test_sub_millisecond_timeout_is_refused_at_enqueue(tq: taskq.TaskQueue, empty_db: None, timeout_s: float) -> None:
    with pytest.raises(taskq.InvalidOption, match="1 ms") as info:
        tq.enqueue("t", force=True, timeout_s=timeout_s)
    assert isinstance(info.value, taskq.TaskqError)


def test_sub_millisecond_timeout_is_refused_by_the_decorator(tq: taskq.TaskQueue, empty_db: None) -> None:
    with pytest.raises(taskq.InvalidOption, match="1 ms"):

        @tq.task(timeout_s=0.0004)
        def quick() -> None: ...


def test_a_one_millisecond_timeout_is_kept(tq: taskq.TaskQueue) -> None:
    handle = tq.enqueue("t", force=True, timeout_s=0.001)
    task = tq.get(handle.id)
    assert task is not None and task.timeout_s == 0.001


# -- 3. an explicit empty URL is an error, not a request to discover a server -------------


def test_an_explicit_empty_url_is_refused_even_with_taskq_redis_url_set(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKQ_REDIS_URL", redis_url)
    for client in (taskq.TaskQueue, taskq.AsyncTaskQueue):
        with pytest.raises(taskq.InvalidOption, match="url is empty"):
            client(url="")


# -- 4. a malformed URL is a typed one-line error, not a bare ValueError ----------------

MALFORMED_URLS = ["http://x", "not a url", "redis://localhost:abc/0", "redis://localhost:99999/0", "redis://:6379/0"]


@pytest.mark.parametrize("url", MALFORMED_URLS)
@pytest.mark.parametrize("client", [taskq.TaskQueue, taskq.AsyncTaskQueue])
def test_a_malformed_url_is_invalid_option(client: type, url: str) -> None:
    with pytest.raises(taskq.InvalidOption, match="bad Redis URL") as info:
        client(url)
    assert isinstance(info.value, taskq.TaskqError)
    assert "\n" not in str(info.value)


def test_a_malformed_url_in_the_environment_is_invalid_option_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "http://x")
    with pytest.raises(taskq.InvalidOption, match="REDIS_URL: bad Redis URL"):
        taskq.TaskQueue()


def test_the_cli_and_the_clients_share_one_url_check() -> None:
    from taskq.cli import common

    assert common.url_problem is taskq.server.url_problem


# -- 5. a re-driven task sheds the failure that killed it ---------------------------------


# tests/worker/test_worker.py::test_redrive_from_dead_letter_queue_runs_again runs a worker through
# dead -> re-drive -> success and checks the record keeps no old error_type, error or traceback.


# -- secrets: a malformed URL's error never quotes its password -----------------------------

SECRET = "s3cr/et#pw"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://user:{SECRET}@localhost:99999/0",  # bad port (urllib's own message quotes it)
        f"redis://user:{SECRET}@[::1/0",  # unclosed IPv6 bracket
        f"http://user:{SECRET}@localhost:6379/0",  # wrong scheme
        f"redis://:{SECRET}@localhost:0/0",  # port 0
    ],
)
def test_url_errors_never_carry_the_password(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(taskq.InvalidOption) as info:
        taskq.TaskQueue(url)
    assert "***" in str(info.value)
    assert "s3" not in str(info.value) and "pw" not in str(info.value), str(info.value)
    monkeypatch.setenv("TASKQ_REDIS_URL", url)
    with pytest.raises(taskq.InvalidOption) as info:
        taskq.TaskQueue()
    assert "TASKQ_REDIS_URL" in str(info.value) and "s3" not in str(info.value)
    cli = subprocess.run([TASKQ, "--url", url, "stats"], capture_output=True, text=True)
    assert cli.returncode == 2 and len(cli.stderr.splitlines()) == 1 and "s3" not in cli.stderr, cli.stderr
