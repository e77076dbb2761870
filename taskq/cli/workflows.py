"""``taskq workflow show|cancel``: a workflow (chain, group, depends_on DAG) and every node's
state, or cancel what has not run (:mod:`taskq.workflows`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from taskq.cli.common import JsonOption, connected, print_json, stdout
from taskq.workflows import WorkflowInfo

workflow_app = typer.Typer(
    help="Look at a workflow (chain, group, DAG) node by node, or cancel it.", no_args_is_help=True
)
WorkflowIdArgument = Annotated[
    str, typer.Argument(help="The workflow id (tq.submit(...).id, or a task's workflow_id).")
]


def _progress(node: Any) -> str:
    p = node.task.progress if node.task else None
    if not p:
        return "-"
    total = f"/{p['total']:g}" if p.get("total") is not None else ""
    return f"{p['done']:g}{total} {p.get('message') or ''}".strip()


def _info_to_dict(info: WorkflowInfo) -> dict[str, Any]:
    def task(node: Any) -> dict[str, Any] | None:
        t = node.task
        if t is None:
            return None
        return {
            "name": t.name,
            "status": t.status.value,
            "result": t.result,
            "error_type": t.error_type,
            "error": t.error,
            "progress": t.progress,
        }

    plain = {f.name: getattr(info, f.name) for f in dataclasses.fields(info) if f.name != "nodes"}
    plain["counts"] = info.counts
    plain["nodes"] = [
        {"id": n.id, "status": n.status, "parents": n.parents, "feed": n.feed, "policy": n.policy,
         "settled": n.settled, "task": task(n)}
        for n in info.nodes
    ]  # fmt: skip
    return plain


@workflow_app.command("show")
def workflow_show(ctx: typer.Context, workflow_id: WorkflowIdArgument, json_output: JsonOption = False) -> None:
    """Every node of a workflow, parents first: its task, status, parents, progress, error."""
    with connected(ctx) as tq:
        info = tq.workflow(workflow_id)
    if json_output:
        print_json(_info_to_dict(info))
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(info.counts.items()))
    typer.echo(f"workflow {info.id}: {info.state} ({info.total} nodes: {counts})")
    table = Table("node", "task", "status", "parents", "progress", "error")
    for node in info.nodes:
        task = node.task
        table.add_row(
            node.id,
            task.name if task else "-",
            node.status,
            str(len(node.parents)),
            _progress(node),
            f"{task.error_type}: {task.error}" if task and task.error_type else "",
        )
    stdout().print(table)


@workflow_app.command("cancel")
def workflow_cancel(ctx: typer.Context, workflow_id: WorkflowIdArgument, json_output: JsonOption = False) -> None:
    """Cancel every node that has not run; running nodes stop at their worker's next heartbeat."""
    with connected(ctx) as tq:
        counts = tq.cancel_workflow(workflow_id)
    if json_output:
        print_json({"id": workflow_id, **counts})
    else:
        typer.echo(
            f"cancelled {counts['cancelled']} nodes of {workflow_id}, {counts['cancelling']} running ones stop soon"
        )
