"""``taskq bench``: the harness as a subcommand of the ``taskq`` CLI.

Registered in benchmarks/pyproject.toml under the ``taskq.cli`` entry-point group; the
harness itself is imported only when the command runs. Same as ``python -m taskq_bench.run``.
"""

from __future__ import annotations

import pathlib
import shlex
from typing import Annotated

import typer

from taskq.cli import check_url, reported_errors, settings_of
from taskq.server import redact_url

bench = typer.Typer()


@bench.command(name="bench")
def bench_command(
    ctx: typer.Context,
    suite: Annotated[
        str, typer.Option("--suite", help="How much: smoke, tiny, notebook (seconds), short (minutes), full.")
    ] = "short",
    systems: Annotated[
        str, typer.Option("--systems", help="Comma-separated: taskq,rq,arq,saq,celery,dramatiq,huey,taskiq.")
    ] = "taskq,rq,arq,saq,celery,dramatiq,huey,taskiq",
    experiments: Annotated[
        str,
        typer.Option("--experiments", help="Subset of enqueue,drain,workload,latency,scaling (scaling: full suite)."),
    ] = "enqueue,drain,workload,latency,scaling",
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds",
            help="Repeat every system this often, order rotated each round (default: the "
            "suite's: 3 for short and full).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Shuffle the systems' order each round with this seed instead of rotating it.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        str, typer.Option("--out", help="Directory for the JSON, CSV and Markdown results.")
    ] = "bench-results",
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Run on this Redis instead of a private redis-server per system. It is FLUSHALLed before "
            "each measurement: all its data is lost. ($TASKQ_REDIS_URL is never used here.)",
            callback=check_url,
            show_default=False,
        ),
    ] = None,
    venv_dir: Annotated[
        str | None,
        typer.Option("--venv-dir", help="Where setup_peers.sh built the peers' virtualenvs.", show_default=False),
    ] = None,
) -> None:
    """Benchmark taskq next to its peers: enqueue and drain throughput, open-loop latency, scaling.

    Each system runs on a private redis-server (or on --url, flushed), through its own API
    and worker command. Peers run in the virtualenvs that `bash benchmarks/setup_peers.sh`
    builds; one that cannot run is reported. Same as `python -m taskq_bench.run`.
    """
    from taskq_bench.run import BenchmarkOptionError, split_list
    from taskq_bench.run import bench as run_bench

    explicit_url = url or settings_of(ctx).url  # only a URL typed on the command line, never one from the env
    command = ["taskq", "bench", "--suite", suite, "--systems", systems, "--experiments", experiments,
               *(["--rounds", str(rounds)] if rounds is not None else []),
               *(["--seed", str(seed)] if seed is not None else []), "--out", out]  # fmt: skip
    if explicit_url:
        command += ["--url", redact_url(explicit_url)]
    with reported_errors():
        try:
            run_bench(suite, split_list(systems), split_list(experiments), pathlib.Path(out), rounds=rounds,
                      url=explicit_url, venv_dir=venv_dir, command=shlex.join(command), seed=seed)  # fmt: skip
        except BenchmarkOptionError as exc:
            raise typer.BadParameter(str(exc)) from None
