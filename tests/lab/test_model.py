"""taskq.lab.model and taskq.lab.distributions: every bad input refused with a typed error
naming what is wrong; the distributions have their stated means over many draws (fixed
seeds); a trace replays its file; grid() builds the product; a workload's plan is
reproducible. No Redis, no simulation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from taskq import Backoff, InvalidPriority, InvalidQueueName, ValidationError
from taskq.lab.model import (
    PLAN_COLUMNS,
    Bursts,
    Config,
    Deterministic,
    Exponential,
    Fixed,
    Histogram,
    LabError,
    LogNormal,
    Poisson,
    Trace,
    Workload,
    check_configs,
    grid,
)

N_DRAWS = 200_000


def rng(seed: int = 1) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------
# Bad input: LabError (a ValidationError) with a message naming the field


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: Poisson(0), "rate_per_s"),
        (lambda: Poisson(-2.0), "rate_per_s"),
        (lambda: Poisson(math.nan), "rate_per_s"),
        (lambda: Poisson(math.inf), "rate_per_s"),
        (lambda: Poisson(True), "rate_per_s"),
        (lambda: Poisson("10"), "rate_per_s"),
        (lambda: Fixed(0.0), "rate_per_s"),
        (lambda: Bursts(0, 1.0), "size"),
        (lambda: Bursts(2.5, 1.0), "size"),
        (lambda: Bursts(5, 0.0), "every_s"),
        (lambda: Trace(()), "no arrival times"),
        (lambda: Trace((0.0, 2.0, 1.0)), "non-decreasing"),
        (lambda: Trace((-1.0, 2.0)), "a time"),
        (lambda: Exponential(0.0), "mean_s"),
        (lambda: Deterministic(-0.01), "value_s"),
        (lambda: LogNormal(0.0, 1.0), "mean_s"),
        (lambda: LogNormal(0.01, -0.5), "sigma"),
        (lambda: Histogram((0.0, 1.0), (1.0, 2.0)), "edges"),
        (lambda: Histogram((0.0, 1.0, 1.0), (1.0, 2.0)), "strictly increasing"),
        (lambda: Histogram((0.0, 1.0), (0.0,)), "add up to 0"),
        (lambda: Histogram((0.0, 1.0), (-1.0,)), "a count"),
        (lambda: Workload("poisson", Exponential(1.0), 10), "arrivals"),
        (lambda: Workload(Poisson(1.0), 0.02, 10), "service"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 0), "n_tasks"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 10.0), "n_tasks"),
        (lambda: Workload(Trace((0.0, 1.0)), Exponential(1.0), 3), "trace has 2"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 10, priorities={}), "priorities"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 10, priorities={5: -1.0}), "priorities[5]"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 10, queues=["lab"]), "queues"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 10, failure_p=1.0), "failure_p"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 10, failure_p=-0.1), "failure_p"),
        (lambda: Workload(Poisson(1.0), Exponential(1.0), 10, seed=-1), "seed"),
        (lambda: Config(""), "name"),
        (lambda: Config("x", workers=0), "workers"),
        (lambda: Config("x", concurrency=0), "concurrency"),
        (lambda: Config("x", concurrency=1.5), "concurrency"),
        (lambda: Config("x", aging_s=0.0), "aging_s"),
        (lambda: Config("x", aging_s=-5.0), "aging_s"),
        (lambda: Config("x", queue_weights={}), "queue_weights"),
        (lambda: Config("x", queue_weights={"a": 0}), "queue_weights['a']"),
        (lambda: Config("x", batch=0), "batch"),
        (lambda: Config("x", batch=1001), "batch"),
        (lambda: Config("x", max_retries=-1), "max_retries"),
        (lambda: Config("x", backoff=0.5), "backoff"),
        (lambda: Config("x", lease_s=0.0), "lease_s"),
    ],
)
def test_bad_input_is_a_lab_error_naming_the_field(make: Any, names: str) -> None:
    with pytest.raises(LabError) as caught:
        make()
    assert names in str(caught.value)
    assert isinstance(caught.value, ValidationError)  # the core's family: callers can catch it as one


def test_bad_priorities_and_queue_names_are_the_cores_errors() -> None:
    with pytest.raises(InvalidPriority, match=r"1\.\.10"):
        Workload(Poisson(1.0), Exponential(1.0), 10, priorities={0: 1.0})
    with pytest.raises(InvalidPriority):
        Workload(Poisson(1.0), Exponential(1.0), 10, priorities={11: 1.0})
    with pytest.raises(InvalidPriority):
        Workload(Poisson(1.0), Exponential(1.0), 10, priorities={True: 1.0})
    with pytest.raises(InvalidQueueName):
        Workload(Poisson(1.0), Exponential(1.0), 10, queues={"a:b": 1.0})
    with pytest.raises(InvalidQueueName):
        Config("x", queue_weights={"bad name": 1})


def test_shares_are_normalised_and_configs_checked() -> None:
    workload = Workload(Poisson(1.0), Exponential(1.0), 10, priorities={9: 1, 1: 3}, queues={"a": 2, "b": 2})
    assert workload.priorities == {9: 0.25, 1: 0.75} and workload.queues == {"a": 0.5, "b": 0.5}
    assert workload.offered_load == pytest.approx(1.0)
    assert workload.utilisation(Config("x", workers=2, concurrency=2)) == pytest.approx(0.25)
    assert Config("x", workers=3, concurrency=4).slots == 12
    assert check_configs(Config("one")) == [Config("one")]
    for bad in ([], [Config("same"), Config("same", workers=2)], ["not a config"]):
        with pytest.raises(LabError):
            check_configs(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# Distributions: the stated means over many draws


@pytest.mark.parametrize(
    "service",
    [
        Exponential(0.02),
        Deterministic(0.005),
        LogNormal(0.01, 0.5),
        LogNormal(0.01, 1.0),
        Histogram((0.0, 0.01, 0.02, 0.05), (5.0, 3.0, 2.0)),
    ],
)
def test_service_times_have_their_stated_moments(service: Any) -> None:
    """200,000 draws: the sample mean's standard error is at most 1.3 x mean / sqrt(200,000)
    (log-normal, sigma 1: sd = mean x sqrt(e - 1)), under 0.3 %; the bounds (1 % on the
    mean, 5 % on E[S^2]) are over three standard errors wide."""
    draws = service.sample(N_DRAWS, rng(7))
    assert len(draws) == N_DRAWS and (draws >= 0).all()
    assert draws.mean() == pytest.approx(service.mean_s, rel=0.01)
    assert (draws**2).mean() == pytest.approx(service.second_moment, rel=0.05)
    assert service.second_moment >= service.mean_s**2


def test_exponential_second_moment_and_histogram_support() -> None:
    assert Exponential(0.5).second_moment == pytest.approx(0.5)
    assert Deterministic(0.3).second_moment == pytest.approx(0.09)
    assert LogNormal(0.02, 0.0).second_moment == pytest.approx(0.02**2)
    hist = Histogram((1.0, 2.0, 4.0), (1.0, 1.0))
    draws = hist.sample(N_DRAWS, rng(3))
    assert draws.min() >= 1.0 and draws.max() < 4.0
    assert ((draws < 2.0).mean()) == pytest.approx(0.5, abs=0.01)
    assert hist.mean_s == pytest.approx((1.5 + 3.0) / 2)


def test_histogram_from_samples_keeps_the_mean() -> None:
    measured = rng(5).exponential(0.02, 50_000)
    hist = Histogram.from_samples(measured, bins=200)
    assert hist.mean_s == pytest.approx(measured.mean(), rel=0.01)
    assert hist.sample(N_DRAWS, rng(6)).mean() == pytest.approx(measured.mean(), rel=0.01)


def test_arrival_processes() -> None:
    poisson = Poisson(40.0).times(N_DRAWS, rng(2))
    gaps = np.diff(poisson, prepend=0.0)
    assert (gaps >= 0).all()
    assert gaps.mean() == pytest.approx(1 / 40.0, rel=0.01)
    assert gaps.std() == pytest.approx(1 / 40.0, rel=0.02)  # exponential gaps: sd = mean
    assert np.array_equal(Fixed(4.0).times(5, rng()), [0.0, 0.25, 0.5, 0.75, 1.0])
    assert Fixed(4.0).rate_per_s == 4.0
    bursts = Bursts(size=3, every_s=0.5)
    assert np.array_equal(bursts.times(7, rng()), [0, 0, 0, 0.5, 0.5, 0.5, 1.0])
    assert bursts.rate_per_s == pytest.approx(6.0)


def test_a_trace_replays_its_file(tmp_path: Path) -> None:
    plain = tmp_path / "times.txt"
    plain.write_text("0.0\n0.1\n0.15\n0.4\n")
    trace = Trace.from_file(plain)
    assert trace.times_s == (0.0, 0.1, 0.15, 0.4)
    assert trace.rate_per_s == pytest.approx(3 / 0.4)
    workload = Workload(trace, Deterministic(0.01), 3)
    assert workload.tasks()["arrival_s"].tolist() == [0.0, 0.1, 0.15]
    with pytest.raises(LabError, match="trace has 4"):
        trace.times(5, rng())

    csv = tmp_path / "log.csv"
    csv.write_text("task,at_s\na,1.0\nb,1.5\nc,3.0\n")
    assert Trace.from_file(csv, column="at_s").times_s == (1.0, 1.5, 3.0)
    with pytest.raises(LabError, match="no column 'when'"):
        Trace.from_file(csv, column="when")
    with pytest.raises(LabError, match="must be numbers"):
        Trace.from_file(csv, column="task")


# ---------------------------------------------------------------------------
# The plan and the grid


def test_the_plan_is_reproducible_and_follows_the_shares() -> None:
    workload = Workload(
        Poisson(100.0), Exponential(0.01), 50_000, priorities={9: 1, 5: 1, 1: 2}, queues={"a": 3, "b": 1}, seed=5
    )
    plan = workload.tasks(0)
    assert tuple(plan.columns) == PLAN_COLUMNS and len(plan) == 50_000
    assert plan["task"].tolist() == list(range(50_000)) and plan["arrival_s"].is_monotonic_increasing
    assert plan.equals(workload.tasks(0))
    assert not plan["arrival_s"].equals(workload.tasks(1)["arrival_s"])
    shares = plan["priority"].value_counts(normalize=True)
    assert shares[9] == pytest.approx(0.25, abs=0.01) and shares[1] == pytest.approx(0.5, abs=0.01)
    assert (plan["queue"] == "a").mean() == pytest.approx(0.75, abs=0.01)
    assert (plan["fails"] == 0).all()


def test_failures_are_geometric_and_leave_the_other_draws_alone() -> None:
    base = Workload(Poisson(100.0), Exponential(0.01), 50_000, seed=9)
    failing = Workload(Poisson(100.0), Exponential(0.01), 50_000, failure_p=0.3, seed=9)
    plan, failed = base.tasks(), failing.tasks()
    # attempts before the first success: mean p / (1 - p); P(fails >= 1) = p
    assert failed["fails"].mean() == pytest.approx(0.3 / 0.7, rel=0.03)
    assert (failed["fails"] >= 1).mean() == pytest.approx(0.3, abs=0.01)
    for column in ("arrival_s", "service_s", "priority", "queue"):
        assert plan[column].equals(failed[column]), column


def test_grid_builds_the_product_in_order() -> None:
    base = Config("base", concurrency=2, max_retries=3, backoff=Backoff(base_s=0.1))
    configs = grid(base, workers=[1, 2], aging_s=[None, 5.0])
    assert [c.name for c in configs] == [
        "workers=1,aging_s=None",
        "workers=1,aging_s=5.0",
        "workers=2,aging_s=None",
        "workers=2,aging_s=5.0",
    ]
    assert [(c.workers, c.aging_s) for c in configs] == [(1, None), (1, 5.0), (2, None), (2, 5.0)]
    assert all(c.concurrency == 2 and c.max_retries == 3 and c.backoff == base.backoff for c in configs)
    assert [c.workers for c in grid(workers=[1, 2, 3])] == [1, 2, 3]
    assert len(grid(workers=[1, 2], concurrency=[1, 4], batch=[None, 1])) == 8
    assert grid(base) == [base]
    for bad in ({"name": ["a"]}, {"colour": [1]}, {"workers": []}, {"workers": "12"}, {"workers": 3}):
        with pytest.raises(LabError):
            grid(**bad)
    with pytest.raises(LabError, match="workers"):
        grid(workers=[1, 0])  # each product is a validated Config
