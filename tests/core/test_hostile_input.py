"""Hostile input a black-box tester found in the core: each is refused with a typed error
(under :class:`taskq.TaskqError`) and writes nothing, or, for a re-driven task, leaves no stale
failure on the record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import taskq


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
