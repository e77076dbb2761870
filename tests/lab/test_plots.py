"""taskq.lab.plots: each plot draws the lines it promises, from the frame's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

from taskq.lab import plots
from taskq.lab.model import Config, Exponential, LabError, Poisson, Workload, frame_attrs, make_frame


def frame(source: str, waits_ms: dict[str, float], n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Tasks 10 ms apart, 5 ms of service, on one slot; config name -> mean wait of priority 2
    (priority 8 waits a fifth of it)."""
    rng = np.random.default_rng(seed)
    rows = []
    for config, wait_ms in waits_ms.items():
        for task in range(n):
            priority = 8 if task % 2 else 2
            wait = float(rng.exponential(wait_ms / 1000 / (5 if priority == 8 else 1)))
            t = task * 0.01
            rows.append(
                {"config": config, "repeat": 0, "task": task, "queue": "lab", "priority": priority, "attempt": 1,
                 "worker": "w0", "enqueue_s": t, "ready_s": t, "claim_s": t + wait, "start_s": t + wait,
                 "end_s": t + wait + 0.005, "outcome": "succeeded"}
            )  # fmt: skip
    workload = Workload(Poisson(100), Exponential(0.005), n, priorities={2: 1, 8: 1}, seed=seed)
    return make_frame(rows, frame_attrs(source, workload, [Config(c) for c in waits_ms], 1))


def test_wait_cdf_draws_one_line_per_priority_ending_at_one() -> None:
    df = frame("measured", {"a": 10.0})
    ax = plots.wait_cdf(df)
    assert isinstance(ax, Axes) and ax.figure is not None
    lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
    assert list(lines) == ["priority 8", "priority 2"]
    for xy in lines.values():
        assert xy[-1, 1] == 1.0 and len(xy) == 30 and (np.diff(xy[:, 0]) >= 0).all()
    assert lines["priority 8"][-1, 0] < lines["priority 2"][-1, 0]  # the urgent ones waited less
    first = df[df["priority"] == 2]["wait_s"].max() * 1000
    assert lines["priority 2"][-1, 0] == pytest.approx(first)


def test_wait_cdf_needs_a_configuration_named_when_there_are_several() -> None:
    df = frame("measured", {"a": 10.0, "b": 20.0})
    with pytest.raises(LabError, match="name one"):
        plots.wait_cdf(df)
    assert len(plots.wait_cdf(df, config="b").get_lines()) == 2
    with pytest.raises(LabError):
        plots.wait_cdf(df, config="nope")
    with pytest.raises(LabError):
        plots.wait_cdf(df, config="a", metric="colour")


def test_p99_vs_utilisation_has_a_line_per_frame_and_the_theory() -> None:
    measured = frame("measured", {"a": 5.0, "b": 15.0})
    simulated = frame("simulated", {"a": 4.0, "b": 12.0})
    ax = plots.p99_vs_utilisation([measured, simulated], theory=lambda rho: rho / 10)
    lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
    assert list(lines) == ["measured", "simulated", "theory"]
    assert len(lines["measured"]) == 2 and len(lines["theory"]) == 100
    rho = plots.utilisation(measured)
    waits = plots.metric_rows(measured)
    p99_b = 1000 * plots.quantile(waits[waits["config"] == "b"]["wait_s"], 0.99)
    assert [float(rho["b"]), p99_b] in lines["measured"].tolist()
    np.testing.assert_allclose(lines["theory"][:, 1], lines["theory"][:, 0] * 100)


def test_measured_vs_simulated_puts_both_and_theory_on_one_axis() -> None:
    measured = frame("measured", {"strict": 20.0, "aging": 10.0})
    simulated = frame("simulated", {"strict": 18.0, "other": 1.0}, seed=1)
    ax = plots.measured_vs_simulated(measured, simulated, theory={"strict": {2: 0.02, 8: 0.004}})
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["strict: measured", "strict: simulated", "strict: theory"]  # shared configs only
    measured_line = ax.get_lines()[0].get_xydata()
    strict = measured[measured["config"] == "strict"]
    expected = [1000 * strict[strict["priority"] == p]["wait_s"].mean() for p in (2, 8)]
    np.testing.assert_allclose(measured_line[:, 1], expected)
    assert ax.get_lines()[2].get_xydata().tolist() == [[2.0, 20.0], [8.0, 4.0]]
    with pytest.raises(LabError, match="share no configuration"):
        plots.measured_vs_simulated(measured, frame("simulated", {"x": 1.0}))
    with pytest.raises(LabError):
        plots.measured_vs_simulated(measured, simulated, stat=1.5)


def test_quantile_is_nearest_rank() -> None:
    assert plots.quantile(range(1, 101), 0.99) == 99.0
    assert plots.quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
