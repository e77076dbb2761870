"""Plumbing every command shares: the global settings, the connection, one-line errors,
output helpers, and the option types that name things the same way in every command."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.text import Text

from taskq.client import TaskQueue
from taskq.errors import TaskqError
from taskq.keys import check_queue_name
from taskq.server import URL_ENV_VARS, url_problem
from taskq.task import DEFAULT_QUEUE, Task

#: ``--json`` on every command that prints data.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables (for scripts and jq).")]
#: One queue (enqueue, dlq): ``--queue/-q NAME``.
QueueOption = Annotated[
    str | None, typer.Option("--queue", "-q", help=f"Queue name (default: {DEFAULT_QUEUE!r}).", show_default=False)
]
#: Several queues (stats, events, metrics): ``--queue/-q NAME``, repeated.
QueuesOption = Annotated[
    list[str] | None,
    typer.Option("--queue", "-q", help="Queue to show; repeat for several (default: every queue).", show_default=False),
]


@dataclasses.dataclass(frozen=True, slots=True)
class CliSettings:
    """The global options, kept on the click context for the commands (and for plug-ins)."""

    url: str | None
    prefix: str

    def connect(self) -> TaskQueue:
        """A client for a one-shot command: it finds a running server but never starts one."""
        return TaskQueue(self.url, prefix=self.prefix, embedded=False)


def stdout() -> Console:
    return Console(highlight=False)


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_error(message: str) -> None:
    """One red line on stderr: ``error: message`` (newlines folded so it stays one line)."""
    stderr().print(Text("error: " + " ".join(message.split()), style="bold red"), soft_wrap=True)


def print_note(message: str, style: str = "yellow") -> None:
    stderr().print(Text(message, style=style), soft_wrap=True)


def print_json(value: Any, *, compact: bool = False) -> None:
    """JSON on stdout: indented, or one compact line (``--watch --json`` prints JSON lines)."""
    if compact:
        typer.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    else:
        typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn taskq (and Redis) errors into one red line and exit code 1, never a traceback."""
    try:
        yield
    except TaskqError as exc:
        print_error(str(exc) or type(exc).__name__)
        raise typer.Exit(1) from None
    except redis.RedisError as exc:
        print_error(f"redis: {str(exc) or type(exc).__name__}")
        raise typer.Exit(1) from None


def settings_of(ctx: typer.Context) -> CliSettings:
    """The global options (``--url``, ``--prefix``) of the ``taskq`` command ``ctx`` runs under."""
    settings = ctx.find_root().obj
    if not isinstance(settings, CliSettings):  # a command invoked without the app callback
        settings = CliSettings(url=None, prefix="taskq")
    return settings


@contextlib.contextmanager
def connected(ctx: typer.Context) -> Iterator[TaskQueue]:
    """A TaskQueue for one command, closed afterwards; taskq errors exit 1 with one line.

    One-shot commands never start a throw-away embedded server: with none found, the
    error says how to start one (``taskq server``) or point at one (``TASKQ_REDIS_URL``).
    """
    settings = settings_of(ctx)
    check_env_url(settings)
    with reported_errors():
        tq = settings.connect()
        try:
            yield tq
        finally:
            tq.close()


def known_queues(tq: TaskQueue, names: Sequence[str]) -> list[str]:
    """``names`` if every one is a queue that has had a task; else one error line and exit 1."""
    if not names:
        return []
    for name in names:
        check_queue_name(name)
    known = set(tq.queues())
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(known)) or "none yet"
        print_error(f"no queue named {', '.join(map(repr, unknown))} (known queues: {listed})")
        raise typer.Exit(1)
    return list(names)


def check_url(url: str | None) -> str | None:
    """A ``--url`` callback: refuse what is not a Redis URL with a usable port (exit 2, one line)."""
    if url is None:
        return None
    problem = url_problem(url)
    if problem:
        raise typer.BadParameter(problem)
    return url


def check_env_url(settings: CliSettings) -> None:
    """Without ``--url``: refuse a malformed ``TASKQ_REDIS_URL`` / ``REDIS_URL`` in one line (exit 2)."""
    if settings.url:
        return
    for name in URL_ENV_VARS:
        value = os.environ.get(name)
        if value:
            problem = url_problem(value)
            if problem:
                print_error(f"{name}: {problem}")
                raise typer.Exit(2)
            return


def parse_json_option(option: str, raw: str, kind: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """Decode a JSON command-line option, or exit 2 with a message saying what was expected."""
    example = "'[1, \"two\"]'" if kind is list else '\'{"to": "a@b.c"}\''
    what = "a JSON list" if kind is list else "a JSON object"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"not valid JSON ({exc}); expected {what}, e.g. {example}", param_hint=option
        ) from None
    if not isinstance(value, kind):
        raise typer.BadParameter(f"expected {what}, e.g. {example}; got {raw}", param_hint=option)
    return value


def format_ms(ms: int | None) -> str:
    """A Unix time in ms as local ISO 8601, or '-'."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(sep=" ", timespec="milliseconds")


def task_to_dict(task: Task) -> dict[str, Any]:
    record = dataclasses.asdict(task)
    record["status"] = task.status.value
    return record
