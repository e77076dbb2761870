"""``taskq schedule list|add|remove|pause|resume``: periodic tasks, stored in Redis, run by
every worker's tick (:mod:`taskq.schedules`)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from taskq.cli.common import JsonOption, QueueOption, connected, print_json, stdout
from taskq.schedules import ScheduleInfo

schedule_app = typer.Typer(
    help="Periodic tasks: list, add, remove, pause or resume schedules (every worker runs them, once per fire time).",
    no_args_is_help=True,
)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def _info_to_dict(info: ScheduleInfo) -> dict[str, Any]:
    s = info.schedule
    return {
        "name": s.name,
        "task": s.task,
        "queue": s.queue,
        "cron": s.cron,
        "every_s": s.every_s,
        "timezone": s.timezone,
        "args": s.args,
        "kwargs": s.kwargs,
        "misfire": s.misfire,
        "paused": s.paused,
        "last_fire_ms": info.last_fire_ms,
        "last_task_id": info.last_task_id,
        "next_fire_ms": info.next_fire_ms,
    }


@schedule_app.command("list")
def schedule_list(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Every schedule with its last run and next fire time."""
    with connected(ctx) as tq:
        infos = tq.schedules()
    if json_output:
        print_json([_info_to_dict(i) for i in infos])
        return
    if not infos:
        typer.echo("no schedules")
        return
    table = Table("name", "task", "queue", "when", "misfire", "last fire", "last task", "next fire")
    for i in infos:
        s = i.schedule
        table.add_row(
            s.name + (" (paused)" if s.paused else ""),
            s.task,
            s.queue,
            s.every,
            s.misfire,
            _when(i.last_fire_ms),
            i.last_task_id or "-",
            _when(i.next_fire_ms),
        )
    stdout().print(table)


def _json_arg(text: str | None, what: str, kind: type) -> Any:
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint=what) from None
    if not isinstance(value, kind):
        raise typer.BadParameter(f"must be a JSON {kind.__name__}", param_hint=what)
    return value


@schedule_app.command("add")
def schedule_add(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="The task name to run.")],
    cron: Annotated[str | None, typer.Option("--cron", help="A cron expression, e.g. '*/5 * * * *'.")] = None,
    every_s: Annotated[float | None, typer.Option("--every-s", help="Run every N seconds instead.")] = None,
    timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA zone of the cron times.")] = "UTC",
    args: Annotated[str | None, typer.Option("--args", help="Positional arguments, a JSON list.")] = None,
    kwargs: Annotated[str | None, typer.Option("--kwargs", help="Keyword arguments, a JSON object.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Schedule name (default: the task name).")] = None,
    queue: QueueOption = None,
    misfire: Annotated[str, typer.Option("--misfire", help="Missed fire times: once, all or skip.")] = "once",
    force: Annotated[bool, typer.Option("--force", help="Allow a task name no worker has published.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Add (or replace) a schedule; it starts from now."""
    arg_list = _json_arg(args, "--args", list)
    kwarg_map = _json_arg(kwargs, "--kwargs", dict)
    with connected(ctx) as tq:
        s = tq.schedule(
            task,
            cron=cron,
            every_s=every_s,
            timezone=timezone,
            args=arg_list,
            kwargs=kwarg_map,
            name=name,
            queue=queue,
            misfire=misfire,
            force=force,
        )
    if json_output:
        print_json({"added": s.name})
    else:
        typer.echo(f"schedule {s.name!r}: {s.task} on queue {s.queue!r}, {s.every}")


@schedule_app.command("remove")
def schedule_remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Remove a schedule (tasks it already enqueued stay)."""
    with connected(ctx) as tq:
        tq.unschedule(name)
    typer.echo(f"removed schedule {name!r}")


@schedule_app.command("pause")
def schedule_pause(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Pause a schedule: no runs until it is resumed."""
    with connected(ctx) as tq:
        tq.pause_schedule(name)
    typer.echo(f"paused schedule {name!r}")


@schedule_app.command("resume")
def schedule_resume(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Resume a paused schedule; the fire times it slept through are skipped."""
    with connected(ctx) as tq:
        tq.pause_schedule(name, paused=False)
    typer.echo(f"resumed schedule {name!r}")
