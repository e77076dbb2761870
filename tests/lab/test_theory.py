"""taskq.lab.theory: the closed forms against textbook values worked out by hand here (not
from the code under test), and bad input refused with LabError. No Redis, no simulation."""

from __future__ import annotations

import math

import pytest

from taskq.lab.model import Config, Deterministic, Exponential, Fixed, LabError, LogNormal, Poisson, Workload
from taskq.lab.theory import (
    cobham_waits_s,
    erlang_c,
    mg1_wait_s,
    mm1_wait_s,
    mmc_priority_waits_s,
    mmc_wait_quantile_s,
    mmc_wait_s,
    predict_waits_s,
)


def erlang_c_by_hand(c: int, a: float) -> float:
    """Erlang C from its definition (Kleinrock Vol. 1, eq. 3.40): the last term over the sum,
    with the last term ``a^c / c! / (1 - rho)``. Independent of the code's Erlang B recursion."""
    last = a**c / math.factorial(c) / (1 - a / c)
    return last / (sum(a**k / math.factorial(k) for k in range(c)) + last)


@pytest.mark.parametrize(
    ("servers", "load", "expected"),
    [
        (1, 0.5, 0.5),  # one server: an arrival waits with probability rho
        (1, 0.8, 0.8),
        (2, 1.0, 1 / 3),  # sum 1 + 1 = 2, last term 1/2 / (1/2) = 1: 1 / 3
        (2, 1.5, 4.5 / 7),  # sum 1 + 1.5, last 1.125 / 0.25 = 4.5: 4.5 / 7
        (3, 2.0, 4 / 9),  # sum 1 + 2 + 2 = 5, last (8/6) / (1/3) = 4: 4 / 9
    ],
)
def test_erlang_c_small_c(servers: int, load: float, expected: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("servers", "load"), [(4, 2.8), (8, 5.6), (16, 12.0), (30, 27.0)])
def test_erlang_c_agrees_with_its_definition(servers: int, load: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(erlang_c_by_hand(servers, load), rel=1e-10)


def test_erlang_c_stays_finite_for_many_servers() -> None:
    """a^c / c! overflows a float at c = 200; the recursion does not."""
    value = erlang_c(200, 190.0)
    assert 0 < value < 1


def test_mm1_and_mmc_means() -> None:
    # M/M/1: W_q = rho / (mu - lambda)
    assert mm1_wait_s(0.5, 1.0) == pytest.approx(1.0)  # 0.5 / 0.5
    assert mm1_wait_s(0.8, 1.0) == pytest.approx(4.0)  # 0.8 / 0.2
    assert mm1_wait_s(40.0, 0.02) == pytest.approx(0.08)  # rho 0.8, mu 50: 0.8 / 10
    # M/M/c: W_q = C / (c mu - lambda)
    assert mmc_wait_s(1.0, 1.0, 2) == pytest.approx((1 / 3) / 1.0)
    assert mmc_wait_s(2.0, 1.0, 3) == pytest.approx((4 / 9) / 1.0)
    assert mmc_wait_s(1.0, 1.0, 1) == math.inf  # rho = 1


def test_mm1_wait_quantiles() -> None:
    """P(W_q > t) = rho e^{-(mu - lambda) t}."""
    assert mmc_wait_quantile_s(0.9, 0.8, 1.0, 1) == pytest.approx(math.log(0.8 / 0.1) / 0.2)  # 10.397 s
    assert mmc_wait_quantile_s(0.99, 0.5, 1.0, 1) == pytest.approx(math.log(0.5 / 0.01) / 0.5)
    # half the arrivals do not wait at rho 0.5: every quantile up to the median is 0
    assert mmc_wait_quantile_s(0.5, 0.5, 1.0, 1) == 0.0
    assert mmc_wait_quantile_s(0.3, 0.5, 1.0, 1) == 0.0
    # M/M/2 at a = 1: C = 1/3, c mu - lambda = 1
    assert mmc_wait_quantile_s(0.9, 1.0, 1.0, 2) == pytest.approx(math.log((1 / 3) / 0.1))
    assert mmc_wait_quantile_s(0.9, 1.0, 1.0, 1) == math.inf


def test_pollaczek_khinchine() -> None:
    # M/D/1 waits half as long as M/M/1 at the same load
    for lam in (0.3, 0.5, 0.8, 0.95):
        assert mg1_wait_s(lam, 1.0, 1.0) == pytest.approx(mm1_wait_s(lam, 1.0) / 2)
    # with exponential service (E[S^2] = 2 m^2) it is M/M/1
    assert mg1_wait_s(25.0, 0.02, 2 * 0.02**2) == pytest.approx(mm1_wait_s(25.0, 0.02))
    # by hand: lambda 0.5, E[S^2] = 3, rho 0.5: 0.5 * 3 / (2 * 0.5) = 1.5
    assert mg1_wait_s(0.5, 1.0, 3.0) == pytest.approx(1.5)
    assert mg1_wait_s(1.0, 1.0, 1.0) == math.inf


def test_cobham_one_class_is_mg1() -> None:
    for second in (1.0, 2.0, 5.0):
        (wait,) = cobham_waits_s({5: (0.6, 1.0, second)}).values()
        assert wait == pytest.approx(mg1_wait_s(0.6, 1.0, second))


def test_cobham_two_classes_by_hand() -> None:
    """lambda 0.3 each, exponential mean 1: W_0 = (0.3 * 2 + 0.3 * 2) / 2 = 0.6; urgent class
    0.6 / (1 * 0.7), the other 0.6 / (0.7 * 0.4). Their average is M/M/1 at rho 0.6 (1.5):
    the conservation law, equal service times."""
    waits = cobham_waits_s({9: (0.3, 1.0, 2.0), 1: (0.3, 1.0, 2.0)})
    assert waits[9] == pytest.approx(0.6 / 0.7)
    assert waits[1] == pytest.approx(0.6 / (0.7 * 0.4))
    assert (waits[9] + waits[1]) / 2 == pytest.approx(mm1_wait_s(0.6, 1.0))
    # the urgent class alone can be served, the other cannot
    overloaded = cobham_waits_s({9: (0.5, 1.0, 2.0), 1: (0.6, 1.0, 2.0)})
    assert math.isfinite(overloaded[9]) and overloaded[1] == math.inf


def test_multi_server_priorities_by_hand() -> None:
    """M/M/2, lambda 0.5 per class, mu 1: a = 1, C = 1/3, c mu = 2; sigma 0.25 then 0.5:
    (1/3) / (2 * 0.75) and (1/3) / (2 * 0.75 * 0.5), averaging to M/M/2's 1/3."""
    waits = mmc_priority_waits_s({9: 0.5, 1: 0.5}, 1.0, 2)
    assert waits[9] == pytest.approx((1 / 3) / 1.5)
    assert waits[1] == pytest.approx((1 / 3) / 0.75)
    assert (waits[9] + waits[1]) / 2 == pytest.approx(mmc_wait_s(1.0, 1.0, 2))
    # one server: Cobham's M/G/1 form with E[S^2] = 2
    one = mmc_priority_waits_s({9: 0.2, 5: 0.3, 1: 0.25}, 1.0, 1)
    assert one == pytest.approx(cobham_waits_s({9: (0.2, 1.0, 2.0), 5: (0.3, 1.0, 2.0), 1: (0.25, 1.0, 2.0)}))
    assert mmc_priority_waits_s({9: 1.0, 1: 1.0}, 1.0, 2) == {9: math.inf, 1: math.inf}


@pytest.mark.parametrize(
    "call",
    [
        lambda: erlang_c(0, 1.0),
        lambda: erlang_c(2, -1.0),
        lambda: erlang_c(2, math.nan),
        lambda: erlang_c(True, 0.5),  # type: ignore[arg-type]
        lambda: mm1_wait_s(-1.0, 1.0),
        lambda: mm1_wait_s(0.0, 1.0),
        lambda: mm1_wait_s(1.0, -0.5),
        lambda: mm1_wait_s(math.inf, 1.0),
        lambda: mmc_wait_s(1.0, 1.0, 0),
        lambda: mmc_wait_quantile_s(1.0, 0.5, 1.0, 1),
        lambda: mmc_wait_quantile_s(0.0, 0.5, 1.0, 1),
        lambda: mmc_wait_quantile_s(0.9, -0.5, 1.0, 1),
        lambda: mg1_wait_s(-0.5, 1.0, 2.0),
        lambda: cobham_waits_s({}),
        lambda: cobham_waits_s({5: (0.5, 1.0, 0.5)}),  # E[S^2] below E[S]^2
        lambda: cobham_waits_s({5: (-0.5, 1.0, 2.0)}),
        lambda: mmc_priority_waits_s({}, 1.0, 2),
        lambda: mmc_priority_waits_s({5: -1.0}, 1.0, 2),
    ],
)
def test_bad_input_is_a_lab_error(call: object) -> None:
    with pytest.raises(LabError):
        call()  # type: ignore[operator]


def test_an_unstable_system_waits_forever() -> None:
    """rho >= 1 is not an error but the documented answer: an infinite wait (and every
    arrival waits), so a sweep across utilisations can plot up to and past saturation."""
    assert erlang_c(2, 2.0) == 1.0 and erlang_c(2, 3.0) == 1.0
    assert mm1_wait_s(1.0, 1.0) == math.inf and mm1_wait_s(2.0, 1.0) == math.inf
    assert mmc_wait_s(5.0, 1.0, 4) == math.inf
    assert mmc_wait_quantile_s(0.5, 5.0, 1.0, 4) == math.inf
    assert mg1_wait_s(1.5, 1.0, 1.0) == math.inf


def test_predict_waits_where_a_formula_holds() -> None:
    exp = Workload(Poisson(30.0), Exponential(0.02), 10, priorities={9: 1, 1: 2})
    one = predict_waits_s(exp, Config("one"))
    assert one == pytest.approx(cobham_waits_s({9: (10.0, 0.02, 8e-4), 1: (20.0, 0.02, 8e-4)}))
    two = predict_waits_s(exp, Config("two", workers=2))
    assert two == pytest.approx(mmc_priority_waits_s({9: 10.0, 1: 20.0}, 0.02, 2))
    assert predict_waits_s(exp, Config("c4", concurrency=4)) == pytest.approx(
        mmc_priority_waits_s({9: 10.0, 1: 20.0}, 0.02, 4)
    )
    md1 = Workload(Poisson(30.0), Deterministic(0.02), 10)
    assert predict_waits_s(md1, Config("one")) == pytest.approx({5: mg1_wait_s(30.0, 0.02, 4e-4)})
    # no formula: aging, general service on several slots, the refill rule at concurrency >= 8,
    # failures, several queues, arrivals that are not Poisson
    assert predict_waits_s(exp, Config("aging", aging_s=1.0)) is None
    assert predict_waits_s(Workload(Poisson(30.0), LogNormal(0.02, 1.0), 10), Config("c2", concurrency=2)) is None
    assert predict_waits_s(exp, Config("c8", concurrency=8)) is None
    assert predict_waits_s(Workload(Poisson(30.0), Exponential(0.02), 10, failure_p=0.1), Config("one")) is None
    assert predict_waits_s(Workload(Poisson(30.0), Exponential(0.02), 10, queues={"a": 1, "b": 1}), Config("x")) is None
    assert predict_waits_s(Workload(Fixed(30.0), Exponential(0.02), 10), Config("one")) is None
