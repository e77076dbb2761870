"""Commands that read the telemetry: ``taskq stats``, ``events``, ``workers``, ``metrics``.
Every one names queues the same way: ``--queue/-q NAME``, repeated; none means every queue."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Annotated, TypeVar

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from taskq.cli.common import JsonOption, QueuesOption, connected, known_queues, print_json, stdout
from taskq.cli.render import event_line, render_stats, server_line, stats_json, workers_table
from taskq.client import TaskQueue
from taskq.keys import check_queue_name
from taskq.server import ServerInfo
from taskq.telemetry import Event, Snapshot, prometheus_text, to_plain

T = TypeVar("T")


def fetch_stats(tq: TaskQueue, queues: Sequence[str]) -> Snapshot:
    """A snapshot of the given queues, or of every known queue when none are given."""
    return tq.snapshot(list(queues) if queues else None, running_limit=0)


def _watch(fetch: Callable[[], T], interval_s: float, count: int | None) -> Iterator[T]:
    """``fetch()`` now and then every ``interval_s``, until ``count`` updates were given."""
    shown = 0
    while count is None or shown < count:
        if shown:
            time.sleep(interval_s)
        shown += 1
        yield fetch()


def _show_stats(
    fetch: Callable[[], Snapshot],
    info: ServerInfo,
    json_output: bool,
    watch: bool,
    interval_s: float,
    count: int | None,
) -> None:
    """Print once, or with ``watch`` refresh every ``interval_s`` until Ctrl-C or ``count`` updates."""
    if not watch:
        count = 1
    with contextlib.suppress(KeyboardInterrupt):
        if json_output:
            for snapshot in _watch(fetch, interval_s, count):
                print_json(stats_json(snapshot, info), compact=watch)
            return
        if not watch:
            stdout().print(Group(render_stats(fetch()), server_line(info)))
            return
        with Live(console=stdout(), auto_refresh=False) as live:
            for snapshot in _watch(fetch, interval_s, count):
                live.update(Group(render_stats(snapshot), server_line(info)), refresh=True)


def stats(
    ctx: typer.Context,
    queues: QueuesOption = None,
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
    """Each queue now, its lifetime counters, and its throughput and latency.

    Per queue: tasks queued (by priority), scheduled, running and dead; counters since the
    queue began; rates and wait, run and end-to-end percentiles over the last 10 s, 1 min
    and 15 min. The last line names the server taskq found.
    """
    with connected(ctx) as tq:
        names = known_queues(tq, queues or [])
        _show_stats(lambda: fetch_stats(tq, names), tq.server_info, json_output, watch, interval_s, count)


def events(
    ctx: typer.Context,
    queues: QueuesOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C (like tail -f).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Start after this stream id or event cursor (from --json); '0' for the oldest kept.",
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
    """Show task events: enqueued, started, succeeded, retried, dead, and so on.

    Without --follow, the most recent ones; with --follow, new ones as they happen.
    """
    console = stdout()

    def show(event: Event) -> None:
        if json_output:
            print_json(event.to_dict(), compact=True)
        else:
            console.print(event_line(event), soft_wrap=True)

    with connected(ctx) as tq, contextlib.suppress(KeyboardInterrupt):
        # following may wait for a queue's first task; showing past events needs a past
        names = ([check_queue_name(q) for q in queues or []] if follow else known_queues(tq, queues or [])) or None
        if follow:
            stream: Iterable[Event] = tq.events(names, since)
        else:
            recent = list(tq.events(names, since or "0", follow=False))
            recent.sort(key=lambda e: (e.timestamp_ms, e.stream_id, e.index))
            stream = recent[-last:] if last else []
        for shown, event in enumerate(stream, start=1):
            show(event)
            if count is not None and shown >= count:
                break


def workers(
    ctx: typer.Context,
    json_output: JsonOption = False,
    running: Annotated[
        bool, typer.Option("--running", help="Also list the ids of the tasks each worker runs.")
    ] = False,
) -> None:
    """Registered workers and their health.

    alive; stale (no heartbeat for over two intervals: stuck or dying); gone (its
    registration expired; listed for an hour).
    """
    with connected(ctx) as tq:
        snapshot = tq.snapshot([], running_limit=0)
    if json_output:
        print_json([to_plain(w) for w in snapshot.workers])
        return
    if not snapshot.workers:
        typer.echo("no workers registered (start one: taskq worker APP)")
        return
    console = stdout()
    console.print(workers_table(snapshot.workers))
    if running:
        for w in snapshot.workers:
            if w.current:
                console.print(Text(f"{w.id}: ", style="bold"), Text(" ".join(w.current)), soft_wrap=True)


def metrics(ctx: typer.Context, queues: QueuesOption = None) -> None:
    """Print every figure of `taskq stats` and `taskq workers` in the Prometheus text format."""
    with connected(ctx) as tq:
        names = known_queues(tq, queues or [])
        snapshot = fetch_stats(tq, names)
    typer.echo(prometheus_text(snapshot), nl=False)
