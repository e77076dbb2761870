"""The ``taskq`` command line: enqueue tasks, look at queues and tasks, re-drive the
dead-letter queue, and run a server in the foreground.

Every command is a thin shell over the blocking API (:class:`taskq.TaskQueue`): read the
options, call one method, render the answer as rich tables or, with ``--json``, as JSON.
Any :class:`~taskq.errors.TaskqError` becomes one red ``error: ...`` line on stderr and
exit code 1; bad command-line input (invalid JSON, contradictory selectors) exits 2.

Adding a command is one decorated function; ``connected(ctx)`` gives it a TaskQueue built
from the global ``--url`` / ``--prefix`` and turns taskq errors into that one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from types import FrameType
from typing import Annotated, Any, TypeVar

import redis
import typer
from rich.columns import Columns
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskq import __version__
from taskq.client import DeadLetters, TaskQueue
from taskq.errors import TaskqError
from taskq.keys import queue_of_task_id
from taskq.server import LOCAL_DEFAULT, EmbeddedServer, Kind, embedded_url, ping, url_from_env
from taskq.task import DEFAULT_QUEUE, Task
from taskq.telemetry import (
    COUNTERS,
    LATENCY_METRICS,
    Event,
    QueueSnapshot,
    Snapshot,
    WindowStats,
    WorkerHealth,
    WorkerSnapshot,
    log_formatter,
    prometheus_text,
    to_plain,
)

HELP = """\
[bold]taskq[/]: a small, fast distributed task queue on Redis.

Producers enqueue named tasks with JSON arguments; workers claim them, retry failures, and dead-letter the rest.

[dim]Example:[/]

  [cyan]taskq server &[/]                                  [dim]# or point TASKQ_REDIS_URL at your Redis[/]
  [cyan]taskq enqueue send_email --args '["a@b.c"]' --priority 9[/]
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
task_app = typer.Typer(help="Look at one task, or cancel it.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="The dead-letter queue: list, re-drive (requeue) or purge tasks that ran out of attempts.",
    no_args_is_help=True,
)
app.add_typer(task_app, name="task")
app.add_typer(dlq_app, name="dlq")

#: Where a queue's tasks are right now.
PLACES = ("queued", "scheduled", "running", "dead")

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables (for scripts and jq).")]
QueueOption = Annotated[
    str | None, typer.Option("--queue", "-q", help=f"Queue name (default: {DEFAULT_QUEUE!r}).", show_default=False)
]


# ---------------------------------------------------------------------------
# Plumbing shared by every command: settings, connection, errors, output.


@dataclasses.dataclass(frozen=True, slots=True)
class CliSettings:
    """The global options, kept on the click context for the commands."""

    url: str | None
    prefix: str

    def connect(self) -> TaskQueue:
        return TaskQueue(self.url, prefix=self.prefix)


def _stdout() -> Console:
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def print_error(message: str) -> None:
    """One red line on stderr: ``error: message`` (newlines folded so it stays one line)."""
    _stderr().print(Text("error: " + " ".join(message.split()), style="bold red"), soft_wrap=True)


def print_note(message: str, style: str = "yellow") -> None:
    _stderr().print(Text(message, style=style), soft_wrap=True)


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
    root = ctx.find_root()
    settings = root.obj
    if not isinstance(settings, CliSettings):  # a command invoked without the app callback
        settings = CliSettings(url=None, prefix="taskq")
    return settings


def _warn_if_ephemeral(url: str | None) -> None:
    """Say so when the discovery order ends at a throwaway embedded server."""
    if url or url_from_env() or ping(*LOCAL_DEFAULT):
        return
    print_note(
        "warning: no Redis found (no --url, TASKQ_REDIS_URL or REDIS_URL, nothing on localhost:6379); "
        "using an embedded server that stops when this command ends. Run `taskq server` and export its URL."
    )


@contextlib.contextmanager
def connected(ctx: typer.Context) -> Iterator[TaskQueue]:
    """A TaskQueue for one command, closed afterwards; taskq errors exit 1 with one line."""
    settings = settings_of(ctx)
    with reported_errors():
        _warn_if_ephemeral(settings.url)
        tq = settings.connect()
        try:
            yield tq
        finally:
            tq.close()


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


# ---------------------------------------------------------------------------
# Global options


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"taskq {__version__}")
        raise typer.Exit()


def _check_url(url: str | None) -> str | None:
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise typer.BadParameter("expected a redis://, rediss:// or unix:// URL, e.g. redis://localhost:6379/0")
    return url


@app.callback()
def _global_options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Redis URL. Default: $TASKQ_REDIS_URL, $REDIS_URL, localhost:6379 if it answers, "
            "else a temporary embedded server.",
            callback=_check_url,
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


# ---------------------------------------------------------------------------
# enqueue


@app.command()
def enqueue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Task name, as the worker registered it (e.g. send_email).")],
    args: Annotated[str, typer.Option("--args", help="Positional arguments, a JSON list.")] = "[]",
    kwargs: Annotated[str, typer.Option("--kwargs", help="Keyword arguments, a JSON object.")] = "{}",
    queue: QueueOption = None,
    priority: Annotated[
        int | None, typer.Option("--priority", "-p", help="1..10, 10 most urgent; default 5.", show_default=False)
    ] = None,
    delay_s: Annotated[float, typer.Option("--delay-s", help="Run no sooner than this many seconds from now.")] = 0.0,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Enqueue at most once per key: a repeat returns the first task's id."),
    ] = None,
    max_retries: Annotated[
        int | None,
        typer.Option(
            "--max-retries",
            help="Retries after the first attempt before the task is dead (default 3).",
            show_default=False,
        ),
    ] = None,
    timeout_s: Annotated[
        float | None,
        typer.Option("--timeout-s", help="Stop an attempt that runs longer than this.", show_default=False),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Queue a task by name and print its id. Any name is accepted: the worker must know it."""
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
        handle = tq.enqueue(name, arg_list, kwarg_dict, **options)
    if json_output:
        print_json({"id": handle.id, "name": name, "queue": queue_of_task_id(handle.id)})
    else:
        typer.echo(handle.id)


# ---------------------------------------------------------------------------
# stats


def _ms_text(value_ms: float | None) -> str:
    if value_ms is None:
        return "-"
    if value_ms >= 10_000:
        return f"{value_ms / 1000:.1f} s"
    if value_ms >= 100:
        return f"{value_ms:.0f} ms"
    return f"{value_ms:.3g} ms"


def _window_title(length_s: int) -> str:
    return f"{length_s // 60} min" if length_s % 60 == 0 else f"{length_s} s"


#: A section of a queue's stats table: a title and a function giving its (label, value) rows.
StatsSection = tuple[str, Callable[[QueueSnapshot], list[tuple[str, str]]]]


def _place_rows(q: QueueSnapshot) -> list[tuple[str, str]]:
    rows = [(place, str(getattr(q, place))) for place in PLACES]
    if q.overdue:
        rows[2] = ("running", f"{q.running} ({q.overdue} overdue)")
    return rows


def _priority_rows(q: QueueSnapshot) -> list[tuple[str, str]]:
    return [(f"priority {p}", str(n)) for p, n in q.by_priority.items()]


def counter_values(q: QueueSnapshot) -> dict[str, int]:
    """The standard counters (0 when never incremented), then any others the scripts keep."""
    values = {name: q.counters.get(name, 0) for name in COUNTERS}
    values.update(sorted((k, v) for k, v in q.counters.items() if k not in values))
    return values


def _counter_rows(q: QueueSnapshot) -> list[tuple[str, str]]:
    return [(name, str(n)) for name, n in counter_values(q).items()]


#: Sections of the left-hand table of `taskq stats`, top to bottom.
STATS_SECTIONS: tuple[StatsSection, ...] = (
    ("now", _place_rows),
    ("queued by", _priority_rows),
    ("counters", _counter_rows),
)
#: Rows of the right-hand table: a label and the figure of one window.
WINDOW_ROWS: tuple[tuple[str, Callable[[WindowStats], str]], ...] = (
    ("succeeded/s", lambda w: f"{w.rate('succeeded'):.1f}"),
    ("failed/s", lambda w: f"{w.rate('failed'):.1f}"),
    ("enqueued/s", lambda w: f"{w.rate('enqueued'):.1f}"),
    ("dead", lambda w: str(w.total("dead"))),
    *(
        (f"{metric} {pname}", lambda w, m=metric, p=pname: _ms_text(w.latency[m].percentile_ms(p)))
        for metric in LATENCY_METRICS
        for pname in ("p50", "p90", "p99", "p999")
    ),
)


def counts_to_dict(q: QueueSnapshot) -> dict[str, Any]:
    """A queue's stats as JSON: places, pending, counters, depth by priority, lifetime
    latency, and per window its counts, rates and latency percentiles."""
    record: dict[str, Any] = to_plain(q)
    record["counters"] = counter_values(q)
    for plain, window in zip(record["windows"], q.windows, strict=True):
        plain["rates"] = {name: round(window.rate(name), 3) for name in window.counts}
    return record


def queue_table(q: QueueSnapshot) -> Table:
    table = Table(title=Text(f"queue {q.queue}", style="bold"), title_justify="left")
    table.add_column("", style="dim")
    table.add_column("", no_wrap=True)
    table.add_column("tasks", justify="right")
    first = True
    for title, rows_of in STATS_SECTIONS:
        rows = rows_of(q)
        if not rows:
            continue
        if not first:
            table.add_section()
        first = False
        for j, (label, value) in enumerate(rows):
            table.add_row(title if j == 0 else "", label, value)
    return table


def window_table(q: QueueSnapshot) -> Table:
    """Throughput and latency percentiles per window, then over the queue's lifetime."""
    table = Table(title=Text("rates and latency", style="bold"), title_justify="left")
    table.add_column("", style="dim", no_wrap=True)
    for w in q.windows:
        table.add_column(f"last {_window_title(w.length_s)}", justify="right")
    table.add_column("all time", justify="right")
    for label, figure in WINDOW_ROWS:
        lifetime = ""
        metric, _, pname = label.partition(" ")
        if metric in LATENCY_METRICS:
            lifetime = _ms_text(q.latency[metric].percentile_ms(pname))
        table.add_row(label, *(figure(w) for w in q.windows), lifetime)
    return table


def _workers_line(snapshot: Snapshot) -> Text:
    counts = dict.fromkeys(WorkerHealth, 0)
    for w in snapshot.workers:
        counts[w.health] += 1
    parts = ", ".join(f"{n} {h.value}" for h, n in counts.items())
    return Text(f"workers: {parts} (taskq workers)", style="dim")


def render_stats(snapshot: Snapshot) -> RenderableType:
    if not snapshot.queues:
        return Text("no queues yet: enqueue a task first (taskq enqueue NAME)", style="yellow")
    per_queue = [Columns([queue_table(q), window_table(q)], padding=(0, 2)) for q in snapshot.queues]
    return Group(*per_queue, _workers_line(snapshot))


def fetch_stats(tq: TaskQueue, queues: Sequence[str]) -> Snapshot:
    """A snapshot of the given queues, or of every known queue when none are given."""
    return tq.snapshot(list(queues) if queues else None, running_limit=0)


def _stats_json(snapshot: Snapshot) -> list[dict[str, Any]]:
    return [counts_to_dict(q) for q in snapshot.queues]


def _show_stats(snapshot: Snapshot, json_output: bool) -> None:
    if json_output:
        print_json(_stats_json(snapshot))
    else:
        _stdout().print(render_stats(snapshot))


def _watch(fetch: Callable[[], T], interval_s: float, count: int | None) -> Iterator[T]:
    """``fetch()`` now and then every ``interval_s``, until ``count`` updates were given."""
    shown = 0
    while count is None or shown < count:
        if shown:
            time.sleep(interval_s)
        shown += 1
        yield fetch()


def _watch_stats(fetch: Callable[[], Snapshot], json_output: bool, interval_s: float, count: int | None) -> None:
    """Refresh every ``interval_s`` until Ctrl-C, or until ``count`` updates were shown."""
    with contextlib.suppress(KeyboardInterrupt):
        if json_output:
            for snapshot in _watch(fetch, interval_s, count):
                print_json(_stats_json(snapshot), compact=True)
            return
        with Live(console=_stdout(), auto_refresh=False) as live:
            for snapshot in _watch(fetch, interval_s, count):
                live.update(render_stats(snapshot), refresh=True)


@app.command()
def stats(
    ctx: typer.Context,
    queues: Annotated[
        list[str] | None, typer.Argument(help="Queues to show (default: every queue that has had a task).")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON (with --watch: one JSON line per update).")
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep refreshing until Ctrl-C.")] = False,
    interval_s: Annotated[
        float, typer.Option("--interval-s", min=0.01, help="Seconds between refreshes with --watch.")
    ] = 1.0,
    count: Annotated[
        int | None,
        typer.Option("--count", "-n", min=1, help="With --watch, stop after this many updates.", show_default=False),
    ] = None,
) -> None:
    """Each queue now (queued by priority, scheduled, running, dead), its lifetime counters, and its
    throughput and latency percentiles (wait, run, end to end) over the last 10 s, 1 min and 15 min."""
    names = list(queues or [])
    with connected(ctx) as tq:
        if watch:
            _watch_stats(lambda: fetch_stats(tq, names), json_output, interval_s, count)
        else:
            _show_stats(fetch_stats(tq, names), json_output)


# ---------------------------------------------------------------------------
# events


def event_line(event: Event) -> Text:
    """One event as a line: time, queue, type, task id, then priority, attempt and worker."""
    stamp = datetime.fromtimestamp(event.timestamp_ms / 1000).strftime("%H:%M:%S.%f")[:-3]
    style = {"dead": "red", "retried": "yellow", "succeeded": "green", "requeued": "magenta"}.get(event.type, "")
    line = Text(f"{stamp} ", style="dim")
    line.append(f"{event.queue:<12} ")
    line.append(f"{event.type:<16}", style=style)
    line.append(event.task_id)
    details = [f"p{event.priority}" if event.priority is not None else ""]
    if event.attempt is not None:
        details.append(f"attempt {event.attempt}")
    if event.worker:
        details.append(f"worker {event.worker}")
    line.append("  " + "  ".join(d for d in details if d), style="dim")
    return line


@app.command()
def events(
    ctx: typer.Context,
    queues: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Queue to watch; repeat for several (default: every queue, new ones too)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C (like tail -f).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Start after this stream id or event cursor (from --json output); '0' for the oldest kept.",
            show_default=False,
        ),
    ] = None,
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="Without --follow: how many recent events.")] = 20,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, help="Stop after printing this many events.", show_default=False),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per event (JSON lines).")] = False,
) -> None:
    """Show task events (enqueued, started, succeeded, retried, dead, ...): the recent ones, or with --follow
    the new ones as they happen."""
    console = _stdout()

    def show(event: Event) -> None:
        if json_output:
            print_json(event.to_dict(), compact=True)
        else:
            console.print(event_line(event), soft_wrap=True)

    with connected(ctx) as tq, contextlib.suppress(KeyboardInterrupt):
        if follow:
            stream: Iterable[Event] = tq.events(queues or None, since)
        else:
            recent = list(tq.events(queues or None, since or "0", follow=False))
            recent.sort(key=lambda e: (e.timestamp_ms, e.stream_id, e.index))
            stream = recent[-last:] if last else []
        for shown, event in enumerate(stream, start=1):
            show(event)
            if count is not None and shown >= count:
                break


# ---------------------------------------------------------------------------
# workers


def _age_text(ms: int) -> str:
    if ms < 1000:
        return f"{ms} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms // 60_000} min"


def workers_table(workers: Sequence[WorkerSnapshot]) -> Table:
    table = Table(title=Text("workers", style="bold"), title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("id", "left"),
        ("health", "left"),
        ("queues", "left"),
        ("running", "right"),
        ("processed", "right"),
        ("failed", "right"),
        ("heartbeat", "right"),
        ("up", "right"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    style = {WorkerHealth.ALIVE: "green", WorkerHealth.STALE: "yellow", WorkerHealth.GONE: "red"}
    for w in workers:
        up = "-" if w.started_ms is None else _age_text(max(0, w.heartbeat_ms - w.started_ms))
        running = "-" if w.health is WorkerHealth.GONE else f"{len(w.current)}/{w.concurrency or '?'}"
        table.add_row(
            w.id,
            Text(w.health.value, style=style[w.health]),
            ",".join(w.queues) or "-",
            running,
            "-" if w.processed is None else str(w.processed),
            "-" if w.failed is None else str(w.failed),
            f"{_age_text(w.heartbeat_age_ms)} ago",
            up,
        )
    return table


@app.command()
def workers(
    ctx: typer.Context,
    json_output: JsonOption = False,
    running: Annotated[
        bool, typer.Option("--running", help="Also list the ids of the tasks each worker runs.")
    ] = False,
) -> None:
    """Registered workers and their health: alive, stale (no heartbeat for over two intervals: stuck or
    dying) or gone (its registration expired; listed for an hour)."""
    with connected(ctx) as tq:
        snapshot = tq.snapshot([], running_limit=0)
    if json_output:
        print_json([to_plain(w) for w in snapshot.workers])
        return
    if not snapshot.workers:
        typer.echo("no workers registered (start one: taskq worker APP)")
        return
    console = _stdout()
    console.print(workers_table(snapshot.workers))
    if running:
        for w in snapshot.workers:
            if w.current:
                console.print(Text(f"{w.id}: ", style="bold"), Text(" ".join(w.current)), soft_wrap=True)


# ---------------------------------------------------------------------------
# metrics


@app.command()
def metrics(
    ctx: typer.Context,
    queues: Annotated[
        list[str] | None, typer.Argument(help="Queues to include (default: every queue that has had a task).")
    ] = None,
) -> None:
    """Print every figure of `taskq stats` and `taskq workers` in the Prometheus text format."""
    with connected(ctx) as tq:
        snapshot = tq.snapshot(list(queues) if queues else None, running_limit=0)
    typer.echo(prometheus_text(snapshot), nl=False)


# ---------------------------------------------------------------------------
# task show / cancel

TaskIdArgument = Annotated[str, typer.Argument(help="Task id, as enqueue printed it (queue:hex).")]


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def task_rows(task: Task) -> list[tuple[str, str]]:
    rows = [
        ("id", task.id),
        ("name", task.name),
        ("queue", task.queue),
        ("status", task.status.value + (" (cancel requested)" if task.cancel_requested else "")),
        ("priority", str(task.priority)),
        ("attempts", f"{task.attempts} (max retries {task.max_retries}, {task.retries_left} left)"),
        ("args", _json_text(task.args)),
        ("kwargs", _json_text(task.kwargs)),
        ("enqueued", format_ms(task.enqueued_ms)),
        ("due", format_ms(task.due_ms)),
        ("started", format_ms(task.started_ms)),
        ("finished", format_ms(task.finished_ms)),
        ("timeout", "-" if task.timeout_s is None else f"{task.timeout_s:g} s"),
        ("worker", task.worker or "-"),
        ("idempotency key", task.idempotency_key or "-"),
    ]
    if task.result is not None:
        rows.append(("result", _json_text(task.result)))
    return rows


def task_renderables(task: Task) -> list[RenderableType]:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in task_rows(task):
        table.add_row(label, value)
    parts: list[RenderableType] = [table]
    if task.error_type or task.error:
        parts.append(Text(f"{task.error_type or 'error'}: {task.error or ''}", style="red"))
    if task.traceback:
        parts.append(Panel(Text(task.traceback), title="traceback", title_align="left", border_style="red"))
    return parts


@task_app.command("show")
def task_show(ctx: typer.Context, task_id: TaskIdArgument, json_output: JsonOption = False) -> None:
    """Show a task's record: status, arguments, times, result, and the error and traceback if it failed."""
    with connected(ctx) as tq:
        task = tq.get(task_id)
    if json_output:
        print_json(task_to_dict(task))
        return
    console = _stdout()
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


# ---------------------------------------------------------------------------
# dlq list / requeue / purge


@dataclasses.dataclass(frozen=True, slots=True)
class DeadSelection:
    """Which dead tasks a requeue or purge applies to: ids, a name/error-type filter, or all."""

    ids: tuple[str, ...]
    name: str | None
    error_type: str | None
    all: bool

    def check(self) -> None:
        """Exactly one kind of selector: ids, or filters (name and/or error type), or --all."""
        kinds = sum((bool(self.ids), self.name is not None or self.error_type is not None, self.all))
        if kinds == 0:
            raise typer.BadParameter(
                "say which dead tasks: give IDS, --name, --error-type, or --all", param_hint="selectors"
            )
        if kinds > 1:
            raise typer.BadParameter(
                "give IDS, or --name/--error-type, or --all, not a mix of them", param_hint="selectors"
            )

    def by_queue(self, queue: str | None) -> dict[str, list[str] | None]:
        """The queues to act on, each with its ids (None: use the filters or all)."""
        if not self.ids:
            return {queue or DEFAULT_QUEUE: None}
        grouped: dict[str, list[str]] = {}
        for task_id in self.ids:
            owner = queue_of_task_id(task_id)
            if queue is not None and owner != queue:
                raise typer.BadParameter(f"task {task_id} belongs to queue {owner!r}, not {queue!r}", param_hint="IDS")
            grouped.setdefault(owner, []).append(task_id)
        return dict(grouped)


DeadIdsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Dead task ids (their queue is read from the id).", show_default=False),
]
NameFilter = Annotated[str | None, typer.Option("--name", help="Only dead tasks with this task name.")]
ErrorTypeFilter = Annotated[
    str | None, typer.Option("--error-type", help="Only dead tasks whose last error has this type (e.g. ValueError).")
]


#: requeue or purge, applied to one queue's dead letters: (dead letters, ids or None, selection) -> how many.
DeadAction = Callable[[DeadLetters, "list[str] | None", DeadSelection], int]


def _requeue(dead: DeadLetters, ids: list[str] | None, selection: DeadSelection) -> int:
    return dead.requeue(ids, name=selection.name, error_type=selection.error_type, all=selection.all)


def _purge(dead: DeadLetters, ids: list[str] | None, selection: DeadSelection) -> int:
    return dead.purge(ids, name=selection.name, error_type=selection.error_type, all=selection.all)


def _apply_to_dead(tq: TaskQueue, selection: DeadSelection, queue: str | None, action: DeadAction) -> dict[str, int]:
    """Run ``action`` on each queue the selection names; returns how many tasks each."""
    done: dict[str, int] = {}
    for q, ids in selection.by_queue(queue).items():
        done[q] = action(tq.dead_letters(q), ids, selection)
        if ids is not None and done[q] < len(ids):
            print_note(f"note: {len(ids) - done[q]} of the given ids were not dead tasks of queue {q!r}; skipped")
    return done


def _report_dead_action(verb: str, done: dict[str, int], json_output: bool) -> None:
    if json_output:
        print_json({verb: sum(done.values()), "by_queue": done})
        return
    for q, n in done.items():
        typer.echo(f"{verb} {n} dead task{'' if n == 1 else 's'} of queue {q!r}")


def dead_table(tasks: Iterable[Task]) -> Table:
    table = Table(show_lines=False)
    table.add_column("id", overflow="fold")
    table.add_column("name", overflow="fold")
    table.add_column("attempts", justify="right")
    table.add_column("died", no_wrap=True)
    table.add_column("error", overflow="ellipsis", no_wrap=True, max_width=60)
    for t in tasks:
        error = f"{t.error_type or ''}: {t.error or ''}".strip(": ")
        table.add_row(t.id, t.name, str(t.attempts), format_ms(t.finished_ms), error)
    return table


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    queue: QueueOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many, oldest death first.")] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many first.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """List dead tasks with their last error (use `taskq task show ID` for the traceback)."""
    with connected(ctx) as tq:
        dead = tq.dead_letters(queue)
        tasks = dead.list(limit=limit, offset=offset)
    if json_output:
        print_json([task_to_dict(t) for t in tasks])
    elif not tasks:
        typer.echo(f"no dead tasks in queue {dead.queue!r}")
    else:
        _stdout().print(dead_table(tasks))


@dlq_app.command("requeue")
def dlq_requeue(
    ctx: typer.Context,
    ids: DeadIdsArgument = None,
    queue: QueueOption = None,
    name: NameFilter = None,
    error_type: ErrorTypeFilter = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead task of the queue.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Re-drive dead tasks back to queued, with fresh attempts: by ids, by --name/--error-type, or --all."""
    selection = DeadSelection(tuple(ids or ()), name, error_type, all_)
    selection.check()
    with connected(ctx) as tq:
        done = _apply_to_dead(tq, selection, queue, _requeue)
    _report_dead_action("requeued", done, json_output)


def _confirm_purge_all(tq: TaskQueue, queue: str | None) -> None:
    q = queue or DEFAULT_QUEUE
    n = tq.stats(q).dead
    if n:
        typer.confirm(f"Delete all {n} dead tasks of queue {q!r} for good?", abort=True)


@dlq_app.command("purge")
def dlq_purge(
    ctx: typer.Context,
    ids: DeadIdsArgument = None,
    queue: QueueOption = None,
    name: NameFilter = None,
    error_type: ErrorTypeFilter = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every dead task of the queue (asks first unless --yes).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation with --all.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Delete dead tasks for good: by ids, by --name/--error-type, or --all."""
    selection = DeadSelection(tuple(ids or ()), name, error_type, all_)
    selection.check()
    with connected(ctx) as tq:
        if all_ and not yes:
            _confirm_purge_all(tq, queue)
        done = _apply_to_dead(tq, selection, queue, _purge)
    _report_dead_action("purged", done, json_output)


# ---------------------------------------------------------------------------
# server


@contextlib.contextmanager
def stop_on_signals(signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while inside; the old handlers come back after."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in signals}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _announce(server: EmbeddedServer) -> None:
    typer.echo(server.url)
    typer.echo(f"export TASKQ_REDIS_URL={server.url}")
    print_note(f"taskq server ({server.kind}) is running; Ctrl-C to stop", style="green")
    typer.get_text_stream("stdout").flush()


@app.command()
def server(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")] = 0,
    kind: Annotated[
        Kind | None,
        typer.Option("--kind", help="Server to run (default: the first found, in this order).", show_default=False),
    ] = None,
) -> None:
    """Run a Redis-compatible server in the foreground (no persistence) until Ctrl-C or SIGTERM.

    Prints its URL first (redis://127.0.0.1:PORT/0), so other shells and workers can share it.
    """
    embedded = EmbeddedServer(kind=kind, port=port)
    with stop_on_signals() as stop:
        with reported_errors():
            embedded.start()
        try:
            _announce(embedded)
            while not stop.wait(0.2):
                pass
        finally:
            embedded.stop()
    print_note("taskq server stopped", style="green")


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


def configure_logging(level: str, log_format: str) -> None:
    """Send log records at ``level`` and above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@app.command()
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
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Tasks run at once per process.")] = 10,
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, help="Worker processes; more than 1 runs a supervised pool.")
    ] = 1,
    lease_s: Annotated[
        float,
        typer.Option("--lease-s", min=0.05, help="Lease per running task: a dead worker's tasks return after it."),
    ] = 30.0,
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
) -> None:
    """Run a worker: claim tasks from QUEUES and run them, until SIGTERM or Ctrl-C.

    A first signal stops claiming and lets running tasks finish for --grace-s seconds, then
    hands the rest back to the queue at once; a second signal skips the grace period.
    """
    from taskq.pool import run_supervisor
    from taskq.worker import Worker, load_app, run_worker

    configure_logging(log_level.value, log_format.value)
    settings = settings_of(ctx)
    if settings.url:
        os.environ["TASKQ_REDIS_URL"] = settings.url
    with reported_errors():
        tq = load_app(app_path)
        if tq.url == embedded_url():
            print_note(
                f"warning: no Redis found, so this worker started a private one at {tq.url}; producers "
                f"must use it: export TASKQ_REDIS_URL={tq.url} (or run `taskq server` and pass --url)"
            )
        if processes > 1:
            options = ["--concurrency", str(concurrency), "--lease-s", str(lease_s), "--grace-s", str(grace_s)]
            options += ["--log-level", log_level.value, "--log-format", log_format.value]
            if queues:
                options += ["--queues", queues]
            if threads:
                options += ["--threads", str(threads)]
            raise typer.Exit(run_supervisor(app_path, processes, options, tq.url))
        settings_kw: dict[str, Any] = {"concurrency": concurrency, "lease_s": lease_s, "grace_s": grace_s}
        if queues:
            settings_kw["queues"] = queues
        if threads:
            settings_kw["threads"] = threads
        the_worker = Worker(tq, **settings_kw)
        run_worker(the_worker)
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


# ---------------------------------------------------------------------------
# bench: a thin shell over benchmarks.run (the harness shipped with taskq)


@app.command()
def bench(
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
    rounds: Annotated[int, typer.Option("--rounds", help="Repeat every system this often, interleaved.")] = 1,
    out: Annotated[
        str, typer.Option("--out", help="Directory for the JSON, CSV and Markdown results.")
    ] = "bench-results",
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Run on this Redis instead of a private redis-server per system. It is FLUSHALLed before "
            "each measurement: all its data is lost. ($TASKQ_REDIS_URL is never used here.)",
            callback=_check_url,
            show_default=False,
        ),
    ] = None,
    venv_dir: Annotated[
        str | None,
        typer.Option("--venv-dir", help="Where setup_peers.sh built the peers' virtualenvs.", show_default=False),
    ] = None,
) -> None:
    """Benchmark taskq next to its peers: enqueue and drain throughput, open-loop latency, scaling.

    Each system runs on a private redis-server (or on --url, flushed), through
    its own API and worker command. Peers run in the virtualenvs that
    `bash benchmarks/setup_peers.sh` builds; one that cannot run is reported.
    Same as `python -m benchmarks.run`.
    """
    import pathlib
    import shlex

    try:
        from benchmarks.run import BenchmarkOptionError, redacted, split_list
        from benchmarks.run import bench as run_bench
    except ImportError as exc:
        print_error(f"taskq bench needs the benchmarks package, shipped with taskq ({exc}); reinstall taskq[bench]")
        raise typer.Exit(1) from None
    explicit_url = url or settings_of(ctx).url  # only a URL typed on the command line, never one from the env
    command = ["taskq", "bench", "--suite", suite, "--systems", systems, "--experiments", experiments,
               "--rounds", str(rounds), "--out", out]  # fmt: skip
    if explicit_url:
        command += ["--url", redacted(explicit_url)]
    with reported_errors():
        try:
            run_bench(suite, split_list(systems), split_list(experiments), pathlib.Path(out), rounds=rounds,
                      url=explicit_url, venv_dir=venv_dir, command=shlex.join(command))  # fmt: skip
        except BenchmarkOptionError as exc:
            raise typer.BadParameter(str(exc)) from None


def main() -> None:
    """Entry point of the ``taskq`` script."""
    app(prog_name="taskq")


if __name__ == "__main__":
    main()
