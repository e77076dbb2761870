"""The lab's figure for the README and the docs, made by a command:

    python -m taskq.lab.demo --out docs/img/lab-priorities.png

One worker with one slot, exponential 15 ms services, Poisson arrivals at a utilisation of 0.7,
three priorities; strict priority and aging (5 ms per level). The plan goes through real
workers on the server ``TaskQueue()`` finds (or ``--url``) and through the simulator given the
real run's cost per task; the figure shows the mean wait per priority, measured, simulated and
by Cobham's formula (fed the real run's rates and times held), beside the measured wait CDFs.
It prints what it measured, and ``--save`` keeps the measured frame as Parquet.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from taskq.lab.model import Config, Exponential, Poisson, Workload
from taskq.lab.plots import measured_vs_simulated, wait_cdf
from taskq.lab.run import run, slot_overhead_s
from taskq.lab.simulate import simulate
from taskq.lab.store import save
from taskq.lab.theory import cobham_waits_s

MEAN_SERVICE_S = 0.015
PRIORITIES = {9: 0.2, 5: 0.3, 2: 0.5}


def measured_cobham(frame: pd.DataFrame, config: str = "strict") -> dict[int, float]:
    """Cobham's mean wait per priority, fed what happened in ``config``'s run: each class's
    arrival rate and the first two moments of the time its tasks held the worker."""
    rows = frame[frame["config"] == config]
    span_s = float(rows["enqueue_s"].max() - rows["enqueue_s"].min())
    held = rows["end_s"] - rows["claim_s"]
    classes = {
        int(p): (len(part) / span_s, float(held[part.index].mean()), float((held[part.index] ** 2).mean()))
        for p, part in rows.groupby("priority")
    }
    return cobham_waits_s(classes)


def figure(measured: pd.DataFrame, simulated: pd.DataFrame, rho: float) -> Figure:
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    measured_vs_simulated(measured, simulated, theory={"strict": measured_cobham(measured)}, ax=left)
    left.set_title(f"Mean queue wait per priority, one worker, rho = {rho}")
    wait_cdf(measured, config="strict", ax=right)
    right.set_xscale("symlog", linthresh=1)
    right.set_xlim(left=0)
    right.set_title("Measured wait CDF per priority, strict priority")
    return fig


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m taskq.lab.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("lab-priorities.png"), help="the PNG to write")
    parser.add_argument("--url", default=None, help="the Redis to run on (default: what TaskQueue() finds)")
    parser.add_argument("--tasks", type=int, default=300, help="tasks per run (default 300)")
    parser.add_argument("--rho", type=float, default=0.7, help="planned utilisation (default 0.7)")
    parser.add_argument("--save", type=Path, default=None, help="also save the measured frame (Parquet)")
    args = parser.parse_args(argv)
    workload = Workload(
        Poisson(args.rho / MEAN_SERVICE_S), Exponential(MEAN_SERVICE_S), args.tasks, priorities=PRIORITIES, seed=21
    )
    configs = [Config("strict"), Config("aging", aging_s=0.005)]
    measured = run(workload, configs, url=args.url)
    overhead_s = slot_overhead_s(measured, workload)
    simulated = simulate(workload, configs, claim_rtt_s=overhead_s)
    figure(measured, simulated, args.rho).savefig(args.out, dpi=110)
    print(f"real cost per task {1000 * overhead_s:.1f} ms; mean wait per priority (ms):")
    for config in ("strict", "aging"):
        for source, frame in (("measured", measured), ("simulated", simulated)):
            rows = frame[frame["config"] == config]
            means = {int(p): round(1000 * w, 1) for p, w in rows.groupby("priority")["wait_s"].mean().items()}
            print(f"  {config:6} {source:9} {dict(sorted(means.items(), reverse=True))}")
    if args.save is not None:
        save(measured, args.save)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
