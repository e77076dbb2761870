"""``taskq chaos``: a fault-injection run on a Redis and workers of its own (:mod:`taskq.chaos`)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from taskq.chaos import ChaosReport, ChaosSettings, run_chaos
from taskq.cli.common import print_json, print_note, reported_errors, stdout


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.2f} MiB"


def report_table(report: ChaosReport) -> Table:
    """The report as one two-column table."""
    table = Table(title="taskq chaos", box=box.SIMPLE_HEAD, show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    recovery = "-" if report.longest_recovery_s is None else f"{report.longest_recovery_s:.3f} s"
    rows = [
        ("seed", str(report.seed)),
        ("workers", str(report.workers)),
        ("tasks submitted", str(report.submitted)),
        ("tasks completed", str(report.completed)),
        ("tasks lost", f"[{'green' if report.ok else 'bold red'}]{report.lost}[/]"),
        ("  of which dead / unfinished", f"{report.dead} / {report.unfinished}"),
        ("tasks duplicated (ran > once)", str(report.duplicated)),
        ("attempts that ran", str(report.runs)),
        ("faults injected", str(len(report.faults))),
        ("longest recovery (fault to next completion)", recovery),
        ("Redis memory before", _mib(report.memory_before_bytes)),
        ("Redis memory after", _mib(report.memory_after_bytes)),
        ("  of which the run's own log of attempts", _mib(report.run_log_bytes)),
        ("workers that exited on their own", str(report.worker_exits)),
        ("elapsed", f"{report.elapsed_s:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for number, fault in enumerate(report.faults, 1):
        after = "- (queue already drained)" if fault.recovery_s is None else f"{fault.recovery_s:.3f} s"
        table.add_row(f"  fault {number}: {fault.kind} ({fault.target}) at {fault.at_s:.1f} s", after)
    return table


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM interrupts the run like Ctrl-C, so its server and workers (a paused one
    included) are stopped on the way out instead of left behind."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def chaos(
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes.")] = 4,
    tasks: Annotated[int, typer.Option("--tasks", min=1, help="Tasks to enqueue (ignored with --duration).")] = 2000,
    rate: Annotated[float, typer.Option("--rate", min=0.1, help="Tasks enqueued per second, steadily.")] = 100.0,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", min=0.1, help="Seconds of workload: enqueue rate x duration tasks.", show_default=False
        ),
    ] = None,
    faults: Annotated[
        int,
        typer.Option(
            "--faults", min=0, help="Faults, evenly spaced, kinds in turn (kill, Redis restart, drop, pause)."
        ),
    ] = 8,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for the victims and the order (default: random, reported).")
    ] = None,
    lease_s: Annotated[
        float, typer.Option("--lease-s", min=0.5, help="The workers' lease (a pause lasts twice it).")
    ] = 2.0,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir", help="Keep the AOF and the logs here (default: a temporary directory).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run a workload on a private redis-server (AOF on) and real workers while injecting faults:
    SIGKILL of a worker, a hard Redis kill and restart, dropped connections, a worker paused past
    its lease. Prints tasks submitted, completed, lost, duplicated, the longest recovery and Redis
    memory before and after. Exit code 1 if any task was lost.

    It never uses --url or TASKQ_REDIS_URL: it starts and stops its own server.

      taskq chaos --workers 4 --tasks 2000 --rate 100 --faults 8 --seed 7
    """
    if duration is not None:
        tasks = max(1, round(rate * duration))
    with reported_errors(), _sigterm_interrupts():
        settings = ChaosSettings(workers=workers, tasks=tasks, rate=rate, faults=faults, seed=seed, lease_s=lease_s)
        report = run_chaos(settings.check(), workdir=workdir, log=lambda line: print_note(line, style="dim"))
    if as_json:
        print_json({**report.to_dict(), "ok": report.ok})
    else:
        stdout().print(report_table(report))
    if not report.ok:
        raise typer.Exit(1)
