"""taskq.lab.simulate against queueing theory and against exact recursions.

Two kinds of check:

* **Exact, path by path.** On the same plan (arrival and service times), a FIFO queue on c
  servers has waits given by the Kiefer-Wolfowitz recursion (Lindley's for c = 1), and a
  single server with a priority order by a direct replay: the simulator must agree to the
  nanosecond. A modelling error (a slot left idle, a task taken out of order) shows at once.
* **Statistical, on long runs with a fixed seed.** The mean wait, mean sojourn and P90 wait of
  M/M/1 (rho 0.5, 0.8), M/M/c (c = 2, 4) and the per-class waits of strict priority on one
  server (Cobham) against taskq.lab.theory. Each case runs R independent repeats (independent
  plans: ``Workload.tasks(r)``) and asserts (1) the 95 % Student-t interval of the repeats'
  means contains the theory value, and (2) the relative error is within a stated bound.

How the bounds were chosen: each case was run at its test size with seeds 1..10 and the
relative error of the mean over the repeats measured (`sd` below is its standard deviation
across the ten seeds, `max` the largest seen). The bound is about 3 sd, rounded up to a half
percent, so it holds with a large margin for the fixed seed and for any other, yet catches a
model error of a few percent. The exact checks above are the tight ones; these check that
the plan's distributions and the model together give the textbook numbers.

The 95 % interval contained the theory value for 9 of 10 seeds in every M/M/c case and 8-9 of
10 per Cobham class (as expected of a 95 % interval; seed 1, used here, is inside for all).

The worker's refill rule (it claims once max(1, concurrency // 4) slots are free, as taskq's
worker does) makes one worker of concurrency c an M/M/c queue only for c <= 7 (the rule is
then "one slot free"); at concurrency 8 a slot stays idle until a second frees, and the
simulated waits are well above M/M/8's. That is taskq's real behaviour, not a simulator bug
(worker.py ``_claim_loop``); a test below pins it, and theory.predict_waits_s gives no
prediction there.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from taskq import Backoff
from taskq.lab.model import FRAME_COLUMNS, Config, Deterministic, Exponential, LabError, Poisson, Workload
from taskq.lab.simulate import claim_order, simulate
from taskq.lab.stats import nearest_rank, t_interval
from taskq.lab.theory import cobham_waits_s, mg1_wait_s, mmc_wait_quantile_s, mmc_wait_s
from taskq.worker_context import QueueSelection

SEED = 1
MEAN_S = 1.0  # service mean; times are in units of it


def first_attempts(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["attempt"] == 1]


def per_repeat(df: pd.DataFrame, stat: Callable[[pd.Series], float], column: str = "wait_s") -> list[float]:
    return [float(stat(group)) for _, group in first_attempts(df).groupby("repeat")[column]]


def mean(series: pd.Series) -> float:
    return float(series.mean())


def p90(series: pd.Series) -> float:
    return nearest_rank(series.to_numpy(), 0.9)


def check_against(name: str, values: list[float], theory: float, bound: float) -> None:
    """The repeats' 95 % t-interval contains ``theory`` and their mean is within ``bound``
    (relative) of it."""
    average, low, high = t_interval(values)
    error = average / theory - 1
    assert low <= theory <= high, f"{name}: theory {theory:.4f} outside the 95 % CI [{low:.4f}, {high:.4f}]"
    assert abs(error) <= bound, f"{name}: relative error {error:+.2%} beyond {bound:.1%}"


# ---------------------------------------------------------------------------
# Reference recursions (independent of the simulator's code)


def fifo_waits(arrival_s: np.ndarray, service_s: np.ndarray, servers: int) -> np.ndarray:
    """Kiefer-Wolfowitz: each arrival, in order, takes the server that frees first."""
    free_at = [0.0] * servers
    waits = np.empty(len(arrival_s))
    for i, (arrival, service) in enumerate(zip(arrival_s, service_s, strict=True)):
        start = max(arrival, heapq.heappop(free_at))
        waits[i] = start - arrival
        heapq.heappush(free_at, start + service)
    return waits


def one_server_waits(plan: pd.DataFrame, key: Callable[[float, int], float | tuple[float, ...]]) -> np.ndarray:
    """One non-preemptive server that, whenever it frees, takes the waiting task of lowest
    ``key(arrival_s, priority)`` (then the earliest arrival)."""
    arrival, service, priority = (plan[c].to_numpy() for c in ("arrival_s", "service_s", "priority"))
    waits = np.empty(len(plan))
    waiting: list[tuple[float | tuple[float, ...], int]] = []
    now, nxt = 0.0, 0
    for _ in range(len(plan)):
        if not waiting:
            now = max(now, arrival[nxt])
        while nxt < len(plan) and arrival[nxt] <= now:
            heapq.heappush(waiting, (key(arrival[nxt], int(priority[nxt])), nxt))
            nxt += 1
        _, i = heapq.heappop(waiting)
        waits[i] = now - arrival[i]
        now += service[i]
    return waits


def strict(arrival_s: float, priority: int) -> tuple[float, ...]:
    return (10 - priority, arrival_s)


def simulated_waits(df: pd.DataFrame) -> np.ndarray:
    return first_attempts(df).sort_values("task")["wait_s"].to_numpy()


@pytest.mark.parametrize(
    ("servers", "config"),
    [
        (1, Config("m1")),
        (2, Config("c2", concurrency=2)),
        (2, Config("w2", workers=2)),
        (4, Config("c4", concurrency=4)),
        (4, Config("w2c2", workers=2, concurrency=2)),
        (7, Config("c7", concurrency=7)),
    ],
)
def test_fifo_waits_are_kiefer_wolfowitz_path_by_path(servers: int, config: Config) -> None:
    workload = Workload(Poisson(0.85 * servers), Exponential(MEAN_S), 5_000, seed=SEED)
    plan = workload.tasks(0)
    expected = fifo_waits(plan["arrival_s"].to_numpy(), plan["service_s"].to_numpy(), servers)
    got = simulated_waits(simulate(workload, config))
    assert (expected > 0).mean() > 0.3  # a queue formed
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("aging_s", [None, 0.25, 2.0])
def test_one_server_priority_order_path_by_path(aging_s: float | None) -> None:
    """Strict priority with FIFO ties, or aging: the score ``arrival + (10 - priority) x
    aging_s`` (claim.lua's clock + rank x window), lowest first."""
    workload = Workload(Poisson(0.9), Exponential(MEAN_S), 5_000, priorities={9: 1, 5: 1, 1: 1}, seed=SEED)
    key = strict if aging_s is None else (lambda arrival, priority: arrival + (10 - priority) * aging_s)
    expected = one_server_waits(workload.tasks(0), key)
    got = simulated_waits(simulate(workload, Config("one", aging_s=aging_s)))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------
# Long runs against the theory


@pytest.fixture(scope="module")
def mm1() -> dict[float, pd.DataFrame]:
    """M/M/1 at rho 0.5 (5 repeats of 20,000 tasks) and 0.8 (10 repeats: the wait's
    variance grows steeply with rho)."""
    return {
        rho: simulate(Workload(Poisson(rho / MEAN_S), Exponential(MEAN_S), 20_000, seed=SEED), Config("m1"), repeats)
        for rho, repeats in ((0.5, 5), (0.8, 10))
    }


# Measured relative error over seeds 1..10 (sd, max) -> bound:
#   rho 0.5: wait 1.76 %, 3.80 % -> 5 %; sojourn 0.94 %, 2.01 % -> 3 %; P90 1.61 %, 2.92 % -> 5 %
#   rho 0.8: wait 2.11 %, 4.51 % -> 6.5 %; sojourn 1.69 %, 3.62 % -> 5 %; P90 2.18 %, 5.08 % -> 6.5 %
MM1_BOUNDS = {0.5: (0.05, 0.03, 0.05), 0.8: (0.065, 0.05, 0.065)}


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mm1_mean_wait_sojourn_and_p90(mm1: dict[float, pd.DataFrame], rho: float) -> None:
    df, lam = mm1[rho], rho / MEAN_S
    wait_bound, sojourn_bound, p90_bound = MM1_BOUNDS[rho]
    theory = mmc_wait_s(lam, MEAN_S, 1)
    assert theory == pytest.approx(rho * MEAN_S / (1 - rho))
    check_against(f"M/M/1 rho {rho} wait", per_repeat(df, mean), theory, wait_bound)
    check_against(f"M/M/1 rho {rho} sojourn", per_repeat(df, mean, "sojourn_s"), theory + MEAN_S, sojourn_bound)
    check_against(f"M/M/1 rho {rho} P90", per_repeat(df, p90), mmc_wait_quantile_s(0.9, lam, MEAN_S, 1), p90_bound)
    assert set(df["outcome"]) == {"succeeded"} and df["repeat"].nunique() == len(per_repeat(df, mean))


# Measured over seeds 1..10 at rho 0.7, 8 repeats of 25,000 tasks (sd, max) -> bound:
#   c = 2: wait 2.08 %, 3.92 % -> 6.5 %; sojourn 1.06 %, 1.97 % -> 3.5 %; P90 1.81 %, 3.63 % -> 5.5 %
#   c = 4: wait 2.44 %, 4.16 % -> 7.5 %; sojourn 0.70 %, 1.27 % -> 2.5 %; P90 1.95 %, 3.66 % -> 6 %
MMC_BOUNDS = {2: (0.065, 0.035, 0.055), 4: (0.075, 0.025, 0.06)}


@pytest.mark.parametrize("servers", [2, 4])
def test_mmc_mean_wait_sojourn_and_p90(servers: int) -> None:
    """c slots as one worker of concurrency c (the path-by-path test shows c workers of one
    slot give the same waits, task by task)."""
    rho = 0.7
    lam = rho * servers / MEAN_S
    workload = Workload(Poisson(lam), Exponential(MEAN_S), 25_000, seed=SEED)
    df = simulate(workload, Config(f"c{servers}", concurrency=servers), repeats=8)
    wait_bound, sojourn_bound, p90_bound = MMC_BOUNDS[servers]
    theory = mmc_wait_s(lam, MEAN_S, servers)
    name = f"M/M/{servers} rho {rho}"
    check_against(f"{name} wait", per_repeat(df, mean), theory, wait_bound)
    check_against(f"{name} sojourn", per_repeat(df, mean, "sojourn_s"), theory + MEAN_S, sojourn_bound)
    check_against(f"{name} P90", per_repeat(df, p90), mmc_wait_quantile_s(0.9, lam, MEAN_S, servers), p90_bound)


# Measured over seeds 1..10 at rho 0.75, 10 repeats of 20,000 tasks, per class (sd, max) -> bound:
#   priority 9: 1.40 %, 3.26 % -> 5 %; priority 5: 1.35 %, 3.18 % -> 5 %; priority 1: 2.11 %, 4.33 % -> 7 %
COBHAM_SHARES = {9: 0.2, 5: 0.3, 1: 0.5}
COBHAM_BOUNDS = {9: 0.05, 5: 0.05, 1: 0.07}


def test_strict_priority_on_one_server_gives_cobhams_waits() -> None:
    rho = 0.75
    workload = Workload(Poisson(rho / MEAN_S), Exponential(MEAN_S), 20_000, priorities=COBHAM_SHARES, seed=SEED)
    df = first_attempts(simulate(workload, Config("strict"), repeats=10))
    theory = cobham_waits_s({p: (rho * share, MEAN_S, 2 * MEAN_S**2) for p, share in COBHAM_SHARES.items()})
    assert theory[9] < theory[5] < theory[1]
    for priority, bound in COBHAM_BOUNDS.items():
        rows = df[df["priority"] == priority]
        check_against(f"Cobham priority {priority}", per_repeat(rows, mean), theory[priority], bound)


def test_md1_waits_half_as_long_as_mm1() -> None:
    """Pollaczek-Khinchine with deterministic service, 4 repeats of 20,000 tasks (measured over
    seeds 1..10: relative error sd 2.60 %, max 4.88 %, the 95 % CI held the theory 10/10 -> 8 %)."""
    rho = 0.8
    workload = Workload(Poisson(rho), Deterministic(MEAN_S), 20_000, seed=SEED)
    df = simulate(workload, Config("md1"), repeats=4)
    check_against("M/D/1 wait", per_repeat(df, mean), mg1_wait_s(rho, MEAN_S, MEAN_S**2), 0.08)


def test_the_refill_rule_departs_from_mmc_at_concurrency_8() -> None:
    """One worker of concurrency 8 claims only once 2 slots are free (8 // 4), as taskq's
    worker does: its waits are far above M/M/8's (measured +95 % at rho 0.7, seeds 1..3),
    while 8 workers of one slot are M/M/8 (a few percent)."""
    lam = 0.7 * 8 / MEAN_S
    workload = Workload(Poisson(lam), Exponential(MEAN_S), 20_000, seed=SEED)
    df = simulate(workload, [Config("c8", concurrency=8), Config("w8", workers=8)])
    theory = mmc_wait_s(lam, MEAN_S, 8)
    waits = first_attempts(df).groupby("config")["wait_s"].mean()
    assert waits["c8"] > 1.5 * theory, (waits["c8"], theory)
    assert waits["w8"] == pytest.approx(theory, rel=0.15)


# ---------------------------------------------------------------------------
# Policies, reproducibility, retries, and the frame's shape


def test_aging_trades_the_urgent_class_wait_for_the_others() -> None:
    """Same plan, strict vs aging: the low class waits less, the high class more; the mean over
    all tasks hardly moves (Kleinrock's conservation law: equal service times, work-conserving
    orders). Measured over seeds 1..10 (aging / strict): low class 0.73-0.76, urgent class
    2.0-2.5, all tasks 0.992-1.011; the bounds below (0.9, 1.1, 2.5 %) leave room for any seed."""
    workload = Workload(Poisson(0.8), Exponential(MEAN_S), 20_000, priorities={9: 1, 1: 1}, seed=SEED)
    df = first_attempts(simulate(workload, [Config("strict"), Config("aging", aging_s=0.5)]))
    by_class = df.groupby(["config", "priority"])["wait_s"].mean()
    assert by_class["aging", 1] < 0.9 * by_class["strict", 1], by_class
    assert by_class["aging", 9] > 1.1 * by_class["strict", 9], by_class
    overall = df.groupby("config")["wait_s"].mean()
    assert overall["aging"] == pytest.approx(overall["strict"], rel=0.025), overall
    # and a very long window is strict priority again, task by task
    slow = first_attempts(simulate(workload, Config("slow-aging", aging_s=1e6)))
    strict_waits = df[df["config"] == "strict"].sort_values("task")["wait_s"].to_numpy()
    np.testing.assert_allclose(slow.sort_values("task")["wait_s"], strict_waits, rtol=0, atol=1e-9)


def test_the_same_seed_gives_the_same_frame() -> None:
    workload = Workload(Poisson(3.0), Exponential(0.25), 2_000, priorities={9: 1, 1: 2}, failure_p=0.2, seed=42)
    configs = [
        Config("weighted", workers=2, concurrency=2, queue_weights={"lab": 1}, max_retries=2, backoff=Backoff(0.1)),
        Config("aging", aging_s=1.0, max_retries=1),
    ]
    a, b = simulate(workload, configs, repeats=2), simulate(workload, configs, repeats=2)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    other = simulate(Workload(Poisson(3.0), Exponential(0.25), 2_000, priorities={9: 1, 1: 2}, seed=43), configs)
    assert not np.array_equal(other["wait_s"].to_numpy()[:100], a["wait_s"].to_numpy()[:100])
    assert not first_attempts(a[a["repeat"] == 0])["wait_s"].equals(first_attempts(a[a["repeat"] == 1])["wait_s"])


def test_retries_end_as_the_plan_says() -> None:
    backoff = Backoff(base_s=0.5, min_s=0.5, cap_s=4.0, jitter=0)
    workload = Workload(Poisson(1.0), Exponential(0.5), 1_500, failure_p=0.4, seed=SEED)
    config = Config("retry", concurrency=2, max_retries=2, backoff=backoff)
    df = simulate(workload, config)
    plan = workload.tasks(0).set_index("task")
    assert (plan["fails"] > config.max_retries).sum() > 40  # the seed gives dead tasks
    for task, rows in df.groupby("task"):
        fails = int(plan.loc[task, "fails"])
        attempts = min(fails, config.max_retries) + 1
        assert rows["attempt"].tolist() == list(range(1, attempts + 1)), (task, fails)
        last = "succeeded" if fails <= config.max_retries else "dead"
        assert rows["outcome"].tolist() == ["failed"] * (attempts - 1) + [last], (task, fails)
        ends, readies = rows["end_s"].to_numpy(), rows["ready_s"].to_numpy()
        # retry k is ready exactly its backoff after attempt k ended (no jitter)
        for k in range(1, attempts):
            assert readies[k] - ends[k - 1] == pytest.approx(backoff.delay_s(k)), (task, k)
    dead = df[df["outcome"] == "dead"]
    assert (dead["attempt"] == config.max_retries + 1).all()
    assert len(dead) == (plan["fails"] > config.max_retries).sum()


def test_the_simulator_draws_queue_orders_as_the_worker_does() -> None:
    queues, weights = ["a", "b", "c"], [5, 2, 1]
    selection = QueueSelection(tuple(queues), tuple(weights))
    ours, theirs = random.Random(3), random.Random(3)
    orders = [claim_order(queues, weights, ours) for _ in range(500)]
    assert orders == [list(selection.claim_order(theirs)) for _ in range(500)]
    assert sum(o[0] == "a" for o in orders) > sum(o[0] == "c" for o in orders)
    assert claim_order(queues, None, ours) == queues


def test_run_and_simulate_return_the_same_columns(redis_url: str) -> None:
    """A tiny real run beside a simulation of the same plan: the same columns, in order, with
    the same dtypes, and (the outcomes being planned) the same attempts and outcomes."""
    from taskq.lab.run import run

    backoff = Backoff(base_s=0.01, min_s=0.01, cap_s=0.02, jitter=0)
    workload = Workload(Poisson(200.0), Exponential(0.002), 30, priorities={2: 1, 8: 1}, failure_p=0.3, seed=5)
    config = Config("tiny", concurrency=2, max_retries=1, backoff=backoff)
    measured, simulated = run(workload, config, url=redis_url), simulate(workload, config)
    assert list(measured.columns) == list(simulated.columns) == list(FRAME_COLUMNS)
    assert measured.dtypes.to_dict() == simulated.dtypes.to_dict()
    assert {c: str(t) for c, t in simulated.dtypes.items()} == dict(FRAME_COLUMNS)
    keys = ["task", "attempt", "outcome", "priority", "queue"]
    assert measured[keys].equals(simulated[keys])
    assert set(simulated["outcome"]) >= {"failed", "succeeded"}
    assert (measured.attrs["source"], simulated.attrs["source"]) == ("measured", "simulated")


def test_bad_arguments_are_refused() -> None:
    workload = Workload(Poisson(1.0), Exponential(0.5), 10)
    for call in (
        lambda: simulate("workload", Config("x")),  # type: ignore[arg-type]
        lambda: simulate(workload, []),
        lambda: simulate(workload, Config("x"), repeats=0),
        lambda: simulate(workload, Config("x"), claim_rtt_s=-0.001),
        lambda: simulate(workload, Config("x"), claim_rtt_s=float("nan")),
        lambda: simulate(workload, Config("x", queue_weights={"other": 1})),
    ):
        with pytest.raises(LabError):
            call()
