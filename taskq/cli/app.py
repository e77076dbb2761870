"""The root ``taskq`` command: global options, the built-in commands, and the plug-ins."""

from __future__ import annotations

import inspect
import sys
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from taskq import __version__
from taskq.cli import chaos, dlq, inspection, monitor, schedules, server, tasks, worker, workflows
from taskq.cli.common import CliSettings, check_url, print_error
from taskq.cli.plugins import PluginCommand, add_plugins

HELP = """\
[bold]taskq[/]: a small, fast distributed task queue on Redis.

Producers enqueue named tasks with JSON arguments; workers claim them, retry failures,
and dead-letter the rest.

[dim]Example:[/]

  [cyan]taskq server &[/]        [dim]# or point TASKQ_REDIS_URL at your Redis[/]
  [cyan]taskq worker myapp.tasks:tq &[/]
  [cyan]taskq enqueue send_email --args '["a@b.c"]'[/]
  [cyan]taskq stats --watch[/]
"""

app = typer.Typer(
    name="taskq",
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode="rich",
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"taskq {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Redis URL. Default: $TASKQ_REDIS_URL, $REDIS_URL, else localhost:6379 if it answers.",
            callback=check_url,
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", envvar="TASKQ_PREFIX", help="Key prefix, to keep several taskq apps apart.")
    ] = "taskq",
    version: Annotated[
        bool, typer.Option("--version", help="Print the taskq version and exit.", callback=_show_version, is_eager=True)
    ] = False,
) -> None:
    ctx.obj = CliSettings(url=url, prefix=prefix)


app.command()(tasks.enqueue)
app.command()(tasks.tasks)
app.add_typer(tasks.task_app, name="task")
app.command()(monitor.stats)
app.command()(monitor.events)
app.command()(monitor.workers)
app.command()(monitor.metrics)
app.command()(inspection.inspect)
app.add_typer(dlq.dlq_app, name="dlq")
app.add_typer(schedules.schedule_app, name="schedule")
app.add_typer(workflows.workflow_app, name="workflow")
app.command()(server.server)
app.command()(worker.worker)
app.command()(chaos.chaos)


def reflow(text: str) -> str:
    """Help text with each paragraph on one line, so the terminal wraps it at its own width
    (typer keeps the line breaks of a docstring, which cut sentences in two at 80 columns).
    Indented lines (examples) keep their breaks."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith(" ") or "\n " in p else " ".join(p.split("\n")) for p in paragraphs)


def _reflow_help(command: PluginCommand) -> None:
    if command.help:
        command.help = reflow(command.help)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, TyperCommand | TyperGroup):
                _reflow_help(sub)


def command() -> TyperGroup:
    """The whole ``taskq`` command: the built-in commands and the installed plug-ins."""
    group = typer.main.get_group(app)
    add_plugins(group)
    _reflow_help(group)
    return group


def main() -> None:
    """Entry point of the ``taskq`` script. Usage errors (a bad option value, a missing
    argument) are one line on stderr, exit 2, like every other error of the CLI."""
    try:
        result = command().main(prog_name="taskq", standalone_mode=False)
    except typer.Abort:
        print_error("aborted")
        sys.exit(1)
    except typer.TyperException as exc:
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        if not message.strip() or message.lstrip().startswith("Usage:"):  # no arguments: help was the answer
            typer.echo(message, nl=False)
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        print_error(f"{message}{where}")
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(result if isinstance(result, int) else 0)
