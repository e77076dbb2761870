"""Retry backoff: pure functions, so plain tests and properties, no Redis."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import taskq
from taskq.backoff import Backoff, backoff_bounds_s, backoff_delay_s

retries = st.integers(1, 200)
fractions = st.floats(0, 1)


@pytest.mark.parametrize(("retry", "delay_s"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0), (10, 300.0)])
def test_exponential_without_jitter(retry: int, delay_s: float) -> None:
    assert backoff_delay_s(retry, jitter=0) == delay_s


def test_defaults_clamp_to_one_to_three_hundred_seconds() -> None:
    rng = random.Random(7)
    delays = [backoff_delay_s(r, rng=rng) for r in range(1, 100) for _ in range(20)]
    assert min(delays) >= 1.0 and max(delays) <= 300.0
    assert backoff_delay_s(10_000, jitter=0) == 300.0  # huge retry numbers do not overflow
    assert backoff_delay_s(1, base_s=0.001, jitter=0) == 1.0  # the floor holds


@given(retry=retries, jitter=fractions, seed=st.integers(0, 2**32))
def test_delay_lies_within_its_bounds(retry: int, jitter: float, seed: int) -> None:
    low, high = backoff_bounds_s(retry, jitter=jitter)
    delay = backoff_delay_s(retry, jitter=jitter, rng=random.Random(seed))
    assert 1.0 <= low <= delay <= high <= 300.0


@given(
    retry=retries,
    base_s=st.floats(0, 1000),
    min_s=st.floats(0, 100),
    extra_s=st.floats(0, 1000),
    jitter=fractions,
    seed=st.integers(0, 2**32),
)
def test_delay_always_within_min_and_cap(
    retry: int, base_s: float, min_s: float, extra_s: float, jitter: float, seed: int
) -> None:
    cap_s = min_s + extra_s
    delay = backoff_delay_s(retry, base_s, cap_s, jitter, min_s, random.Random(seed))
    assert min_s <= delay <= cap_s
    assert math.isfinite(delay)


@given(retry=st.integers(1, 100), base_s=st.floats(0.001, 100), cap_s=st.floats(1, 1000))
def test_upper_bound_is_monotonic_and_reaches_the_cap(retry: int, base_s: float, cap_s: float) -> None:
    kw = {"base_s": base_s, "cap_s": cap_s, "min_s": 0.0, "jitter": 0.0}
    assert backoff_delay_s(retry, **kw) <= backoff_delay_s(retry + 1, **kw) <= cap_s
    assert backoff_delay_s(200, **kw) == cap_s


def test_jitter_takes_off_up_to_its_fraction() -> None:
    rng = random.Random(1)
    delays = [backoff_delay_s(6, jitter=0.5, rng=rng) for _ in range(2000)]  # raw 32 s
    assert min(delays) >= 16.0 and max(delays) <= 32.0
    assert max(delays) - min(delays) > 14.0  # it really spreads over the range
    assert len(set(delays)) > 1000


def test_jitter_uses_the_given_rng() -> None:
    a = [backoff_delay_s(5, rng=random.Random(3)) for _ in range(3)]
    b = [backoff_delay_s(5, rng=random.Random(3)) for _ in range(3)]
    assert a == b


def test_zero_jitter_is_deterministic_and_full_jitter_can_reach_the_floor() -> None:
    assert {backoff_delay_s(3, jitter=0) for _ in range(50)} == {4.0}

    class Top(random.Random):
        def random(self) -> float:
            return 0.999999

    assert backoff_delay_s(3, jitter=1.0, rng=Top()) == pytest.approx(1.0)  # clamped to min_s


def test_bounds_match_the_documented_formula() -> None:
    assert backoff_bounds_s(4, jitter=0.5) == (4.0, 8.0)
    assert backoff_bounds_s(1, jitter=0.5) == (1.0, 1.0)  # the floor wins over jitter
    assert backoff_bounds_s(20) == (150.0, 300.0)


def test_backoff_dataclass_delegates_and_is_frozen() -> None:
    b = Backoff(base_s=2, cap_s=10, jitter=0, min_s=0.5)
    assert [b.delay_s(r) for r in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]
    with pytest.raises(AttributeError):
        b.base_s = 3  # type: ignore[misc]
    assert Backoff() == Backoff(1.0, 300.0, 0.5, 1.0)


@pytest.mark.parametrize("retry", [0, -1, -100])
def test_retry_numbers_start_at_one(retry: int) -> None:
    with pytest.raises(taskq.InvalidOption, match="start at 1"):
        backoff_delay_s(retry)
    with pytest.raises(taskq.InvalidOption):
        Backoff().delay_s(retry)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"base_s": -1}, "base_s"),
        ({"min_s": -0.1}, "min_s"),
        ({"min_s": 10, "cap_s": 5}, "min_s <= cap_s"),
        ({"jitter": -0.01}, "jitter"),
        ({"jitter": 1.01}, "jitter"),
    ],
)
def test_invalid_schedules_are_refused(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(taskq.InvalidOption, match=word):
        Backoff(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"cap_s": math.inf}, {"base_s": math.nan}, {"base_s": math.inf}, {"min_s": math.nan}, {"base_s": "1"}],
)
def test_non_finite_schedules_are_refused(kwargs: dict[str, object]) -> None:
    """An infinite cap used to pass validation and then crash enqueue with OverflowError."""
    with pytest.raises(taskq.InvalidOption, match="finite numbers"):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_a_task_backoff_reaches_the_worker_intact(tq: taskq.TaskQueue) -> None:
    @tq.task(backoff=Backoff(base_s=0.5, cap_s=60, jitter=0.25, min_s=0.1))
    def job() -> None: ...

    job.enqueue()
    (claimed,) = tq._exec.run(tq.ops.claim("default", 1, 1000, "w"))
    assert claimed.backoff == Backoff(base_s=0.5, cap_s=60, jitter=0.25, min_s=0.1)
