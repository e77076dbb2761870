"""Commands about tasks: ``taskq enqueue``, ``taskq tasks`` (the registry), and
``taskq task show|cancel``."""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

import typer

from taskq.cli.common import (
    JsonOption,
    QueueOption,
    connected,
    parse_json_option,
    print_error,
    print_json,
    stdout,
    task_to_dict,
)
from taskq.cli.render import registry_table, task_renderables
from taskq.errors import UnknownTaskName
from taskq.keys import queue_of_task_id
from taskq.server import redact_url

task_app = typer.Typer(help="Look at one task, or cancel it.", no_args_is_help=True)

TaskIdArgument = Annotated[str, typer.Argument(help="Task id, as enqueue printed it (queue:hex).")]


def enqueue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Task name, as a worker registered it (e.g. send_email).")],
    args: Annotated[str, typer.Option("--args", help="Positional arguments, a JSON list.")] = "[]",
    kwargs: Annotated[str, typer.Option("--kwargs", help="Keyword arguments, a JSON object.")] = "{}",
    queue: QueueOption = None,
    priority: Annotated[
        int | None,
        typer.Option("--priority", "-p", help="1..10, 10 most urgent (default: the task's).", show_default=False),
    ] = None,
    delay_s: Annotated[float, typer.Option("--delay-s", help="Run no sooner than this many seconds from now.")] = 0.0,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Enqueue at most once per key: a repeat returns the first task's id."),
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(
            "--max-retries", help="Retries after the first attempt (default: the task's).", show_default=False
        ),
    ] = None,
    timeout_s: Annotated[
        float | None,
        typer.Option("--timeout-s", help="Stop an attempt that runs longer (default: the task's).", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Enqueue a name no worker has registered (yet).")] = False,
    json_output: JsonOption = False,
) -> None:
    """Queue a task by name and print its id.

    The task's queue, priority, retries and timeout come from what its workers registered
    (see `taskq tasks`); options given here override them. A name no live or recent worker
    registered is refused unless --force.
    """
    arg_list = parse_json_option("--args", args, list)
    kwarg_dict = parse_json_option("--kwargs", kwargs, dict)
    options = {
        "queue": queue,
        "priority": priority,
        "delay_s": delay_s,
        "idempotency_key": idempotency_key,
        "max_retries": max_retries,
        "timeout_s": timeout_s,
    }
    with connected(ctx) as tq:
        try:
            handle = tq.enqueue(name, arg_list, kwarg_dict, force=force, **options)
        except UnknownTaskName as exc:  # the same one line, with the CLI's spelling of force
            print_error(str(exc).replace("force=True", "--force"))
            raise typer.Exit(1) from None
    if json_output:
        print_json({"id": handle.id, "name": name, "queue": queue_of_task_id(handle.id)})
    else:
        typer.echo(handle.id)


def tasks(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """The tasks workers registered: name, queue, options, last seen.

    The names live or recent workers said they run, with the queue, priority, retries and
    timeout `taskq enqueue NAME` takes from them, and when a worker last said so.
    """
    with connected(ctx) as tq:
        registered = tq.registered_tasks()
        now_ms = int(time.time() * 1000)
        server = redact_url(tq.url)
    ordered = [registered[name] for name in sorted(registered)]
    if json_output:
        print_json([dataclasses.asdict(task) for task in ordered])
    elif not ordered:
        typer.echo(f"no tasks registered on {server} (start a worker: taskq worker APP)")
    else:
        stdout().print(registry_table(ordered, now_ms))


@task_app.command("show")
def task_show(ctx: typer.Context, task_id: TaskIdArgument, json_output: JsonOption = False) -> None:
    """Show a task's record: status, arguments, times, result, and the error and traceback if it failed."""
    with connected(ctx) as tq:
        task = tq.get(task_id)
    if json_output:
        print_json(task_to_dict(task))
        return
    console = stdout()
    for part in task_renderables(task):
        console.print(part)


@task_app.command("cancel")
def task_cancel(ctx: typer.Context, task_id: TaskIdArgument, json_output: JsonOption = False) -> None:
    """Cancel a task: at once if queued or scheduled; a running one stops at its worker's next heartbeat."""
    with connected(ctx) as tq:
        outcome = tq.cancel(task_id)
    if json_output:
        print_json({"id": task_id, "outcome": outcome})
    elif outcome == "cancelling":
        typer.echo(f"cancelling {task_id} (it is running: its worker stops it at the next heartbeat)")
    else:
        typer.echo(f"{outcome} {task_id}")
