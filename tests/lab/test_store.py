"""taskq.lab.store: a lab frame survives Parquet with its attrs, and a saved experiment
re-plots without re-running."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taskq.lab import plots
from taskq.lab.model import Config, Exponential, LabError, Poisson, Workload, frame_attrs, make_frame
from taskq.lab.store import METADATA_KEY, load, save


def lab_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """A hand-made measured frame: two priorities, a retried task, no Redis needed."""
    rng = np.random.default_rng(seed)
    rows = []
    for task in range(n):
        enqueue = task * 0.01
        wait = float(rng.exponential(0.005))
        rows.append(
            {"config": "c", "repeat": 0, "task": task, "queue": "lab", "priority": 1 + 8 * (task % 2), "attempt": 1,
             "worker": "w0", "enqueue_s": enqueue, "ready_s": enqueue, "claim_s": enqueue + wait,
             "start_s": enqueue + wait, "end_s": enqueue + wait + 0.01, "outcome": "succeeded"}
        )  # fmt: skip
    rows[0]["outcome"] = "failed"
    rows.append({**rows[0], "attempt": 2, "ready_s": 0.05, "claim_s": 0.06, "start_s": 0.06, "end_s": 0.07})
    rows[-1]["outcome"] = "succeeded"
    workload = Workload(Poisson(100), Exponential(0.01), n, priorities={1: 1, 9: 1}, seed=seed)
    attrs = frame_attrs("measured", workload, [Config("c", max_retries=1)], 1)
    attrs["machine"]["load_before"] = [0.5, 0.25, 0.125]
    return make_frame(rows, attrs)


def test_save_and_load_give_back_the_frame_and_its_attrs(tmp_path: Path) -> None:
    df = lab_frame()
    path = save(df, tmp_path / "run.parquet")
    back = load(path)
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs == df.attrs and back.attrs["machine"]["load_before"] == [0.5, 0.25, 0.125]
    assert pq.read_schema(path).metadata[METADATA_KEY].startswith(b"{")
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_a_saved_experiment_replots_the_same(tmp_path: Path) -> None:
    df = lab_frame(seed=3)
    before = plots.wait_cdf(df)
    after = plots.wait_cdf(load(save(df, tmp_path / "e.parquet")))
    assert [line.get_label() for line in after.get_lines()] == ["priority 9", "priority 1"]
    for a, b in zip(before.get_lines(), after.get_lines(), strict=True):
        np.testing.assert_array_equal(a.get_xydata(), b.get_xydata())


def test_attrs_that_are_not_json_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    df = lab_frame()
    df.attrs["when"] = object()
    with pytest.raises(LabError, match="JSON"):
        save(df, tmp_path / "bad.parquet")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LabError):
        save(pd.DataFrame({"x": [1]}), tmp_path / "notlab.parquet")
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_what_save_did_not_write(tmp_path: Path) -> None:
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), plain)
    with pytest.raises(LabError, match=r"no taskq\.lab metadata"):
        load(plain)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(LabError, match="cannot read"):
        load(tmp_path / "junk.parquet")
    with pytest.raises(LabError, match="cannot read"):
        load(tmp_path / "missing.parquet")
