"""``taskq dlq list|requeue|purge``: the dead-letter queue."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated

import typer

from taskq.cli.common import (
    JsonOption,
    QueueOption,
    connected,
    known_queues,
    print_json,
    print_note,
    stdout,
    task_to_dict,
)
from taskq.cli.render import dead_table
from taskq.client import DeadLetters, TaskQueue
from taskq.keys import queue_of_task_id
from taskq.task import DEFAULT_QUEUE

dlq_app = typer.Typer(
    help="The dead-letter queue: list, re-drive (requeue) or purge tasks that ran out of attempts.",
    no_args_is_help=True,
)


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
        if queue is not None:
            known_queues(tq, [queue])
        dead = tq.dead_letters(queue)
        tasks = dead.list(limit=limit, offset=offset)
    if json_output:
        print_json([task_to_dict(t) for t in tasks])
    elif not tasks:
        typer.echo(f"no dead tasks in queue {dead.queue!r}")
    else:
        stdout().print(dead_table(tasks))


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
