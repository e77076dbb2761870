"""``taskq worker APP``: run a worker in the foreground, or a supervised pool of them."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, Any

import typer

from taskq.cli.common import check_env_url, print_error, print_note, reported_errors, settings_of
from taskq.cli.logs import LogFormat, LogLevel, configure_logging


def load_app_or_exit(app_path: str) -> Any:
    """The TaskQueue ``app_path`` names, or one error line with a hint and exit 1.

    A wrong path (no such module, no such attribute) is the usual first-hour mistake, not a
    bug to debug from a traceback. An exception raised by the app's own code while it is
    imported is left alone: its traceback is what its author needs.
    """
    from taskq.worker import load_app

    module_name, _, attribute = app_path.partition(":")
    hint = "run from the directory that holds the module, or add it to PYTHONPATH"
    try:
        return load_app(app_path)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            print_error(f"cannot import {module_name!r} (APP {app_path}): no such module; {hint}")
        else:
            print_error(f"importing {module_name!r} (APP {app_path}) failed: {exc}; is it installed?")
        raise typer.Exit(1) from None
    except AttributeError:
        print_error(
            f"module {module_name!r} has no attribute {attribute!r} (APP {app_path}): "
            "give the name of its TaskQueue, e.g. myapp.tasks:tq"
        )
        raise typer.Exit(1) from None


def _pool_options(
    concurrency: int | None, lease_s: float, grace_s: float, log_level: LogLevel, log_format: LogFormat,
    queues: str | None, threads: int | None, heartbeat_s: float | None = None, event_loop: str = "auto",
) -> list[str]:  # fmt: skip
    """The command-line options each process of a ``--processes N`` pool gets."""
    options = ["--lease-s", str(lease_s), "--grace-s", str(grace_s), "--loop", event_loop]
    if concurrency is not None:
        options += ["--concurrency", str(concurrency)]
    if heartbeat_s is not None:
        options += ["--heartbeat-s", str(heartbeat_s)]
    options += ["--log-level", log_level.value, "--log-format", log_format.value]
    if queues:
        options += ["--queues", queues]
    if threads:
        options += ["--threads", str(threads)]
    return options


def worker(
    ctx: typer.Context,
    app_path: Annotated[
        str, typer.Argument(metavar="APP", help="The TaskQueue to serve, as module:attribute (e.g. myapp.tasks:tq).")
    ],
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-Q",
            help="Queues to serve: ordered 'emails,default' (first has precedence) or weighted "
            "'emails=3,default=1'. Default: the app's default queue.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="Tasks run at once per process. Default: 100 when every task of APP is async def "
            "(a waiting coroutine is cheap), else 10 (each running sync task holds a thread).",
            show_default=False,
        ),
    ] = None,
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, help="Worker processes; more than 1 runs a supervised pool.")
    ] = 1,
    lease_s: Annotated[
        float,
        typer.Option("--lease-s", min=0.05, help="Lease per running task: a dead worker's tasks return after it."),
    ] = 30.0,
    heartbeat_s: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-s", help="Heartbeat that extends the leases; at most --lease-s / 2. Default: --lease-s / 3."
        ),
    ] = None,
    grace_s: Annotated[
        float, typer.Option("--grace-s", min=0, help="On SIGTERM/SIGINT, how long running tasks may finish.")
    ] = 10.0,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="Threads for sync tasks (default: --concurrency).")
    ] = None,
    log_level: Annotated[
        LogLevel,
        typer.Option("--log-level", help="Logging level; 'debug' also logs every task that succeeds."),
    ] = LogLevel.info,
    log_format: Annotated[
        LogFormat,
        typer.Option("--log-format", help="Log lines for people (text) or one JSON object per line (json)."),
    ] = LogFormat.text,
    event_loop: Annotated[
        str,
        typer.Option(
            "--loop",
            help="Event loop: auto (uvloop when installed, pip install 'taskq[speed]'), asyncio or uvloop.",
        ),
    ] = "auto",
) -> None:
    """Run a worker: claim tasks from QUEUES and run them, until SIGTERM or Ctrl-C.

    A first signal stops claiming and lets running tasks finish for --grace-s seconds, then
    hands the rest back to the queue at once; a second signal skips the grace period.

    The server is the APP's (--url, TASKQ_REDIS_URL, localhost:6379). Unlike the one-shot
    commands, a worker that finds none starts an embedded one and prints its URL, so
    producers in other shells can use it (export TASKQ_REDIS_URL=...); it stops with the
    worker. For anything longer-lived, run `taskq server`.
    """
    from taskq.pool import run_supervisor
    from taskq.worker import Worker, loop_factory, run_worker
    from taskq.worker_context import check_heartbeat_s

    configure_logging(log_level.value, log_format.value)
    settings = settings_of(ctx)
    check_env_url(settings)
    if settings.url:
        os.environ["TASKQ_REDIS_URL"] = settings.url
    with reported_errors():
        check_heartbeat_s(lease_s, heartbeat_s)  # here too, so a --processes pool fails before it forks
        loop_factory(event_loop)  # an unknown --loop, or uvloop not installed, fails here too
        tq = load_app_or_exit(app_path)
        if tq.server_info.source == "embedded":
            print_note(
                f"warning: no Redis found, so this worker started a private one at {tq.url}; producers "
                f"must use it: export TASKQ_REDIS_URL={tq.url} (or run `taskq server` and pass --url)"
            )
        if processes > 1:
            options = _pool_options(
                concurrency, lease_s, grace_s, log_level, log_format, queues, threads, heartbeat_s, event_loop
            )
            raise typer.Exit(run_supervisor(app_path, processes, options, tq.url))
        settings_kw: dict[str, Any] = {"concurrency": concurrency, "lease_s": lease_s, "grace_s": grace_s}
        if queues:
            settings_kw["queues"] = queues
        if threads:
            settings_kw["threads"] = threads
        if heartbeat_s is not None:
            settings_kw["heartbeat_s"] = heartbeat_s
        the_worker = Worker(tq, **settings_kw)
        run_worker(the_worker, event_loop=event_loop)
    _exit_past_abandoned_threads(the_worker)


def _exit_past_abandoned_threads(the_worker: Any) -> None:
    """Exit now if sync tasks still run in their threads after shutdown.

    Their leases were released, so the tasks will run again elsewhere; but a thread cannot
    be stopped, and Python would wait for it at exit, forever for a stuck task. So the
    process ends here instead.
    """
    if the_worker.busy_threads:
        logging.getLogger("taskq.worker").warning(
            "exiting with %d sync task(s) still running in threads; their tasks were handed back",
            the_worker.busy_threads,
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
