"""taskq's research lab (``pip install taskq[lab]``): declare a workload and a grid of
configurations, simulate them (:func:`simulate`) or run them on real workers, and compare
the two, and the theory, in one tidy frame (:func:`summarize`).

The core (``taskq``) never imports this package; it uses the core's public API only."""

from taskq.lab.model import (
    FRAME_COLUMNS,
    OUTCOMES,
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
    check_frame,
    describe,
    frame_attrs,
    grid,
    make_frame,
)
from taskq.lab.run import run, slot_overhead_s
from taskq.lab.simulate import simulate
from taskq.lab.stats import jain_index, nearest_rank, summarize, t_interval
from taskq.lab.store import load, save
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

__all__ = [
    "FRAME_COLUMNS",
    "OUTCOMES",
    "PLAN_COLUMNS",
    "Bursts",
    "Config",
    "Deterministic",
    "Exponential",
    "Fixed",
    "Histogram",
    "LabError",
    "LogNormal",
    "Poisson",
    "Trace",
    "Workload",
    "check_configs",
    "check_frame",
    "describe",
    "frame_attrs",
    "grid",
    "make_frame",
    "run",
    "slot_overhead_s",
    "load",
    "save",
    "simulate",
    "summarize",
    "jain_index",
    "nearest_rank",
    "t_interval",
    "cobham_waits_s",
    "erlang_c",
    "mg1_wait_s",
    "mm1_wait_s",
    "mmc_priority_waits_s",
    "mmc_wait_quantile_s",
    "mmc_wait_s",
    "predict_waits_s",
]
