"""taskq.lab.run: real workers on the tests' redis-server, times read back from the events
stream. Small workloads (tens to a few hundred tasks), so the file stays within seconds."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import redis

from taskq import Backoff
from taskq.lab.model import (
    FRAME_COLUMNS,
    Bursts,
    Config,
    Deterministic,
    Exponential,
    LabError,
    Poisson,
    Trace,
    Workload,
    check_frame,
)
from taskq.lab.run import EVENTS_PER_ENTRY, run, slot_overhead_s

FAST_RETRY = Backoff(base_s=0.01, min_s=0.01, cap_s=0.02, jitter=0)


def test_a_run_returns_the_lab_frame_and_leaves_no_keys(redis_url: str, rc: redis.Redis) -> None:
    rc.set("not-the-lab", "kept")
    workload = Workload(Poisson(200), Exponential(0.005), 40, priorities={1: 0.5, 9: 0.5}, seed=4)
    df = run(
        workload, [Config("one", concurrency=2), Config("two", workers=2, concurrency=1)], repeats=2, url=redis_url
    )
    check_frame(df)
    assert list(df.columns) == list(FRAME_COLUMNS)
    assert len(df) == 2 * 2 * 40 and set(df["outcome"]) == {"succeeded"}
    assert set(df.loc[df["config"] == "two", "worker"]) == {"w0", "w1"}
    # the plan's priorities and queues, task by task
    for repeat in (0, 1):
        plan = workload.tasks(repeat).set_index("task")
        got = df[(df["config"] == "one") & (df["repeat"] == repeat)].set_index("task")
        assert (got["priority"] == plan["priority"]).all() and (got["queue"] == plan["queue"]).all()
        # open loop: each task was enqueued at (or a little after) its planned arrival
        lag = got["enqueue_s"] - plan["arrival_s"]
        assert lag.min() > -0.002 and lag.median() < 0.05, lag.describe()
    assert df.attrs["source"] == "measured" and df.attrs["seed"] == 4 and df.attrs["repeats"] == 2
    assert df.attrs["versions"]["redis_server"][0].isdigit()
    assert len(df.attrs["machine"]["load_before"]) == 3 and len(df.attrs["machine"]["load_after"]) == 3
    assert [c["name"] for c in df.attrs["configs"]] == ["one", "two"]
    assert rc.keys("*") == ["not-the-lab"]


def test_failures_and_retries_follow_the_plan(redis_url: str) -> None:
    workload = Workload(Poisson(300), Deterministic(0.002), 60, failure_p=0.4, seed=11)
    config = Config("retry", concurrency=4, max_retries=1, backoff=FAST_RETRY)
    df = run(workload, config, url=redis_url)
    plan = workload.tasks(0).set_index("task")
    assert (plan["fails"] >= 2).any() and (plan["fails"] == 1).any()  # the seed gives every case
    for task, rows in df.groupby("task"):
        fails = int(plan.loc[task, "fails"])
        attempts = min(fails, config.max_retries) + 1
        assert list(rows["attempt"]) == list(range(1, attempts + 1)), (task, fails)
        expected = ["failed"] * (attempts - 1) + ["succeeded" if fails <= config.max_retries else "dead"]
        assert list(rows["outcome"]) == expected, (task, fails)
        # a retry is claimable only after the failed attempt ended and its backoff passed
        for before, after in itertools.pairwise(rows.itertuples()):
            assert after.ready_s >= before.end_s + FAST_RETRY.min_s - 0.002


def test_one_slot_claims_by_priority_then_fifo(redis_url: str) -> None:
    workload = Workload(Bursts(size=30, every_s=1.0), Deterministic(0.004), 30, priorities={2: 1, 5: 1, 9: 1}, seed=2)
    df = run(workload, Config("strict", concurrency=1), url=redis_url)
    rows = list(df.itertuples())
    checked = 0
    for a, b in itertools.permutations(rows, 2):
        # b was waiting (well before a was claimed) and outranks a: b must have gone first
        if b.ready_s + 0.002 < a.claim_s and (b.priority, -b.task) > (a.priority, -a.task):
            assert b.claim_s <= a.claim_s, (b, a)
            checked += 1
    assert checked > 100


def test_a_claim_batch_of_one_still_serves_every_slot(redis_url: str) -> None:
    workload = Workload(Bursts(size=20, every_s=1.0), Deterministic(0.02), 20, seed=1)
    df = run(workload, Config("b1", workers=2, concurrency=2, batch=1), url=redis_url)
    assert len(df) == 20 and set(df["worker"]) == {"w0", "w1"}
    # four slots: at some moment four tasks ran at once (end_s is when the outcome was written,
    # a little after the slot freed, so the count may show one more, never fewer)
    starts = df["claim_s"].to_numpy()
    ends = df["end_s"].to_numpy()
    overlap = max(int(((starts <= t) & (ends > t)).sum()) for t in starts)
    assert overlap >= 4


def test_bad_input_is_refused_before_anything_runs(redis_url: str, rc: redis.Redis) -> None:
    workload = Workload(Poisson(10), Exponential(0.01), 5)
    with pytest.raises(LabError):
        run(workload, [], url=redis_url)
    with pytest.raises(LabError):
        run(workload, Config("x"), repeats=0, url=redis_url)
    with pytest.raises(LabError):
        run("not a workload", Config("x"), url=redis_url)  # type: ignore[arg-type]
    with pytest.raises(LabError):
        run(workload, [Config("same"), Config("same")], url=redis_url)
    assert rc.dbsize() == 0


def test_measured_and_simulated_agree_on_a_small_run(redis_url: str) -> None:
    """The same plan (300 Poisson arrivals, exponential 20 ms services, two slots at a planned
    rho = 0.6) through real workers and through the simulator, given the real run's cost per
    task (slot_overhead_s: the claim's round trip, the sleep's overshoot, a few ms on a busy
    machine). The mean wait and the P99 wait must agree within a factor of 2. The sample paths
    are the same, so most of a run's randomness cancels; what is left is the machine's noise.
    Without the overhead the simulator sees a utilisation some 0.05-0.1 lower than the real one,
    and waits that are far shorter."""
    from taskq.lab.simulate import simulate

    workload = Workload(Poisson(60), Exponential(0.02), 300, seed=7)
    config = Config("c2", concurrency=2)
    measured = run(workload, config, url=redis_url)
    overhead_s = slot_overhead_s(measured, workload)
    assert 0 < overhead_s < 0.02, overhead_s
    simulated = simulate(workload, config, claim_rtt_s=overhead_s)
    assert list(measured.columns) == list(simulated.columns) == list(FRAME_COLUMNS)
    assert (measured.dtypes == simulated.dtypes).all()
    assert measured["task"].tolist() == simulated["task"].tolist()
    pairs = {
        "mean": (measured["wait_s"].mean(), simulated["wait_s"].mean()),
        "p99": (measured["wait_s"].quantile(0.99), simulated["wait_s"].quantile(0.99)),
    }
    for name, (m, s) in pairs.items():
        assert s > 0.005, (name, s)  # the comparison means something: a queue did form
        assert 1 / 2 <= m / s <= 2, (name, m, s)


def test_a_burst_after_a_trickle_keeps_every_event(redis_url: str) -> None:
    """Regression (a flaky docs build: "task 0 has no complete record in the events stream").
    A script writing an entry of k events trims the stream to about events_maxlen / k entries.
    Here 300 tasks arrive one at a time (an entry per event: some 900 entries), then 150 at
    once: the client batches their enqueues into entries of up to 100 events. With the old cap
    (10,000 events) that trimmed the stream to ~100 entries and lost the first tasks' events;
    run() must size the cap so nothing is trimmed."""
    times = tuple([0.002 * i for i in range(300)] + [0.7] * 150)
    workload = Workload(Trace(times), Deterministic(0.0005), len(times), seed=3)
    df = run(workload, Config("trickle-then-burst"), url=redis_url)
    assert sorted(df["task"]) == list(range(len(times))) and set(df["outcome"]) == {"succeeded"}


def test_events_per_entry_matches_the_scripts() -> None:
    """run() sizes its events cap from the scripts' entry size: the two must agree."""
    import taskq

    common = (Path(taskq.__file__).parent / "lua" / "lib" / "common.lua").read_text()
    found = re.search(r"^local EVENTS_PER_ENTRY = (\d+)$", common, re.MULTILINE)
    assert found is not None and int(found.group(1)) == EVENTS_PER_ENTRY
