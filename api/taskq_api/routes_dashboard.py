"""Routes the dashboard needs beyond the core API: whether a token is needed, and a task's
event timeline."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from pydantic import BaseModel, ConfigDict

from taskq import AsyncTaskQueue
from taskq_api import models as m
from taskq_api.settings import API, Settings

TIMELINE_LIMIT = 500


class AuthInfo(BaseModel):
    """What the server asks of a client: a token for changes, and for reads too."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"token_required": True, "reads_need_token": False}]})

    token_required: bool
    reads_need_token: bool


def add_dashboard_routes(app: FastAPI, tq: AsyncTaskQueue, settings: Settings, read: list[Any]) -> None:
    @app.get(f"{API}/auth", tags=["health"])
    async def auth_info() -> AuthInfo:
        """Whether this server needs a bearer token (for changes; for reads too). Needs none itself."""
        required = settings.token is not None
        return AuthInfo(token_required=required, reads_need_token=required and settings.auth_reads)

    not_found: dict[int | str, dict[str, Any]] = {404: {"model": m.Problem, "description": "Unknown task id"}}

    @app.get(f"{API}/tasks/{{task_id}}/events", dependencies=read, responses=not_found, tags=["tasks"])
    async def task_events(
        task_id: Annotated[str, Path(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=TIMELINE_LIMIT)] = 200,
    ) -> list[dict[str, Any]]:
        """A task's events still in its queue's capped stream (oldest first, the last ``limit``):
        enqueued, started, failed, retried, succeeded, dead, requeued, redriven…"""
        task = await tq.get(task_id)  # 404 for an unknown id
        found: list[dict[str, Any]] = []
        events = tq.events(task.queue, since="0", follow=False)
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
                if event.task_id == task_id:
                    found.append(event.to_dict())
        return found[-limit:]
