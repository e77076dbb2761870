"""``taskq inspect QUEUE``: the queue's sorted sets as tables (what ``tq.inspect()`` reads):
queued in claim order with each score decoded, scheduled with due times, running with lease
deadlines, worker, attempt and fencing token, and the dead-letter queue."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from taskq.cli.common import JsonOption, connected, print_json, stdout
from taskq.inspection import DEFAULT_INSPECT_LIMIT, Inspection
from taskq.keys import check_queue_name
from taskq.ops_base import MAX_BATCH


def _ms(value_ms: int) -> str:
    sign = "-" if value_ms < 0 else ""
    value = abs(value_ms)
    return f"{sign}{value} ms" if value < 1000 else f"{sign}{value / 1000:.1f} s"


def _opt(value: Any) -> str:
    return "-" if value is None else str(value)


def _table(title: str, total: int, shown: int, columns: tuple[str, ...]) -> Table:
    more = f" (first {shown})" if shown < total else ""
    table = Table(title=Text(f"{title}: {total}{more}", style="bold"), title_justify="left")
    for name in columns:
        table.add_column(
            name, justify="left" if name in ("id", "name", "worker", "error") else "right", overflow="fold"
        )
    return table


def inspection_tables(seen: Inspection) -> RenderableType:
    """The four places of one inspection as rich tables, with a header line."""
    mode = "strict priority" if seen.aging_s is None else f"aging: +1 priority per {seen.aging_s:g} s waited"
    head = Text(f"queue {seen.queue} · {mode} · server time {seen.taken_ms} ms", style="dim")
    queued_cols = ("#", "id", "name", "priority", "score", "ready µs (FIFO)")
    queued = _table("queued (claim order)", seen.queued_total, len(seen.queued), queued_cols)
    if seen.aging_s is not None:
        queued.add_column("effective priority", justify="right")
    for q in seen.queued:
        row = [str(q.position), q.id, _opt(q.name), _opt(q.priority), str(q.score), _opt(q.ready_us)]
        if seen.aging_s is not None:
            row.append(_opt(q.effective_priority))
        queued.add_row(*row)
    scheduled = _table("scheduled (by due time)", seen.scheduled_total, len(seen.scheduled),
                       ("id", "name", "priority", "attempts", "due in"))  # fmt: skip
    for s in seen.scheduled:
        scheduled.add_row(s.id, _opt(s.name), _opt(s.priority), str(s.attempts), _ms(s.due_in_ms))
    running = _table("running (by lease deadline)", seen.running_total, len(seen.running),
                     ("id", "name", "worker", "attempt", "token", "lease left"))  # fmt: skip
    for r in seen.running:
        left = Text(_ms(r.lease_left_ms), style="red" if r.lease_left_ms < 0 else "")
        running.add_row(r.id, _opt(r.name), _opt(r.worker), str(r.attempt), _opt(r.token), left)
    dead = _table("dead (oldest first)", seen.dead_total, len(seen.dead), ("id", "name", "attempts", "error"))
    for d in seen.dead:
        dead.add_row(d.id, _opt(d.name), str(d.attempts), _opt(d.error_type))
    parts: list[RenderableType] = [head]
    for table in (queued, scheduled, running, dead):
        parts.append(table if table.row_count else Text(str(table.title), style="bold"))
    return Group(*parts)


def inspection_json(seen: Inspection) -> dict[str, Any]:
    out = dataclasses.asdict(seen)
    out["totals"] = seen.totals
    return out


def inspect(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue to look inside.", show_default=False)],
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=MAX_BATCH, help="Tasks listed per place (the totals are exact).")
    ] = DEFAULT_INSPECT_LIMIT,
    json_output: JsonOption = False,
) -> None:
    """Look inside a queue: its sorted sets, members and scores, read in one instant.

    Queued in the order workers will claim them (score = ready time + (10 - priority) * the
    aging window), scheduled by due time, running by lease deadline (with the worker, the
    attempt and the fencing token its completion must carry), and the dead-letter queue.
    """
    with connected(ctx) as tq:
        seen = tq.inspect(check_queue_name(queue), limit=limit)
    if json_output:
        print_json(inspection_json(seen))
    else:
        stdout().print(inspection_tables(seen))
