"""Workflow routes: a workflow's state with every node's (progress included), and cancelling
it. Workflows are submitted from Python (``tq.submit(chain(...))``); a node's progress and
transitions also reach WebSocket clients as events (type ``progress`` and the usual ones)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Path
from pydantic import BaseModel, ConfigDict

from taskq import AsyncTaskQueue, WorkflowInfo
from taskq_api.models import TaskModel
from taskq_api.settings import API

WorkflowIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")]


_NODE_EXAMPLE = {
    "id": "default:0193a1b2c3d4e5f6a7b8",
    "status": "waiting",
    "parents": ["default:0193a1b2c3d4e5f6a7b7"],
    "feed": "prev",
    "policy": "fail",
    "settled": None,
    "task": None,
}


class WorkflowNodeModel(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_NODE_EXAMPLE]})

    id: str
    status: str
    parents: list[str]
    feed: str
    """none, prev (the one parent's result comes first in its args) or all (the list of them)."""
    policy: str
    """fail (a failed parent cancels it) or pass (the error is passed in)."""
    settled: str | None
    task: TaskModel | None


class WorkflowModel(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "wf3f2a9c0d1e2f3a4b",
                    "state": "running",
                    "total": 2,
                    "counts": {"succeeded": 1, "waiting": 1},
                    "created_ms": 1700000000000,
                    "finished_ms": None,
                    "cancel_requested": False,
                    "nodes": [_NODE_EXAMPLE],
                }
            ]
        }
    )

    id: str
    state: str
    """running, succeeded, failed or cancelled."""
    total: int
    counts: dict[str, int]
    created_ms: int
    finished_ms: int | None
    cancel_requested: bool
    nodes: list[WorkflowNodeModel]

    @classmethod
    def of(cls, info: WorkflowInfo) -> WorkflowModel:
        return cls(
            id=info.id,
            state=info.state,
            total=info.total,
            counts=info.counts,
            created_ms=info.created_ms,
            finished_ms=info.finished_ms,
            cancel_requested=info.cancel_requested,
            nodes=[
                WorkflowNodeModel(
                    id=n.id,
                    status=n.status,
                    parents=n.parents,
                    feed=n.feed,
                    policy=n.policy,
                    settled=n.settled,
                    task=TaskModel.of(n.task) if n.task else None,
                )
                for n in info.nodes
            ],
        )


class WorkflowCancelModel(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"cancelled": 3, "cancelling": 1}]})

    cancelled: int
    """Nodes cancelled now (they had not run)."""
    cancelling: int
    """Running nodes whose abort flag was set."""


def add_workflow_routes(app: FastAPI, tq: AsyncTaskQueue, read: list[Any], write: list[Any]) -> None:
    @app.get(
        f"{API}/workflows/{{workflow_id}}",
        dependencies=read,
        tags=["workflows"],
        response_model=WorkflowModel,
        responses={404: {"description": "No such workflow, or its retention passed"}},
    )
    async def get_workflow(workflow_id: WorkflowIdPath) -> WorkflowModel:
        """A workflow's state and every node's task (status, result or error, progress)."""
        return WorkflowModel.of(await tq.workflow(workflow_id))

    @app.post(
        f"{API}/workflows/{{workflow_id}}/cancel",
        dependencies=write,
        tags=["workflows"],
        response_model=WorkflowCancelModel,
        responses={404: {"description": "No such workflow, or its retention passed"}},
    )
    async def cancel_workflow(workflow_id: WorkflowIdPath) -> WorkflowCancelModel:
        """Cancel every node that has not run; running nodes get their abort flag."""
        return WorkflowCancelModel(**await tq.cancel_workflow(workflow_id))
