"""Routes for periodic tasks and rate limits: list, add (or replace), remove, pause and resume
schedules; read a queue's rate-limit state. Schedules live in Redis, so what this API shows
and changes is what every worker ticks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from taskq import AsyncTaskQueue, LimiterState, ScheduleInfo, UnknownTaskName
from taskq_api import models as m
from taskq_api.settings import API

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": m.Problem, "description": "No schedule of that name"}}

ScheduleName = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$")]
QueueName = Annotated[str, Path(pattern=m.QUEUE_PATTERN, examples=["default"])]


class ScheduleRequest(BaseModel):
    """A schedule: a registered task, and either ``cron`` (in ``timezone``) or ``every_s``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"task": "myapp.tasks.report", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}]
        }
    )

    task: str = Field(min_length=1, max_length=200)
    cron: str | None = Field(default=None, max_length=200, examples=["*/5 * * * *"])
    every_s: float | None = Field(default=None, gt=0)
    timezone: str = Field(default="UTC", max_length=64)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Field(default=None, max_length=64)
    priority: int | None = None
    misfire: Literal["once", "all", "skip"] = "once"


class ScheduleModel(BaseModel):
    """A schedule and its state (times are Unix ms, server clock)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly-report",
                    "task": "myapp.tasks.report",
                    "queue": "default",
                    "cron": "30 2 * * *",
                    "every_s": None,
                    "timezone": "Europe/Berlin",
                    "args": [],
                    "kwargs": {},
                    "misfire": "once",
                    "paused": False,
                    "last_fire_ms": 1764984600000,
                    "last_task_id": "default:01J...",
                    "next_fire_ms": 1765071000000,
                }
            ]
        }
    )

    name: str
    task: str
    queue: str
    cron: str | None
    every_s: float | None
    timezone: str
    args: list[Any]
    kwargs: dict[str, Any]
    misfire: str
    paused: bool
    last_fire_ms: int | None
    last_task_id: str | None
    next_fire_ms: int | None

    @classmethod
    def of(cls, info: ScheduleInfo) -> ScheduleModel:
        s = info.schedule
        return cls(
            name=s.name,
            task=s.task,
            queue=s.queue,
            cron=s.cron,
            every_s=s.every_s,
            timezone=s.timezone,
            args=s.args,
            kwargs=s.kwargs,
            misfire=s.misfire,
            paused=s.paused,
            last_fire_ms=info.last_fire_ms,
            last_task_id=info.last_task_id,
            next_fire_ms=info.next_fire_ms,
        )


class LimiterModel(BaseModel):
    """One rate limiter: ``count`` runs per ``period_s``, and when it next lets one run."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "limiter": "queue",
                    "count": 50,
                    "period_s": 1.0,
                    "burst": 1,
                    "algorithm": "gcra",
                    "next_allowed_ms": 1764990000020,
                    "tokens": None,
                }
            ]
        }
    )

    limiter: str
    count: int
    period_s: float
    burst: int
    algorithm: str
    next_allowed_ms: int | None
    tokens: float | None

    @classmethod
    def of(cls, state: LimiterState) -> LimiterModel:
        limit = state.limit
        return cls(
            limiter=state.limiter,
            count=limit.count,
            period_s=limit.period_s,
            burst=limit.burst,
            algorithm=limit.algorithm,
            next_allowed_ms=state.next_allowed_ms,
            tokens=state.tokens,
        )


def add_schedule_routes(app: FastAPI, tq: AsyncTaskQueue, write: list[Any], read: list[Any]) -> None:
    async def one(name: str) -> ScheduleModel:
        for info in await tq.schedules():
            if info.name == name:
                return ScheduleModel.of(info)
        raise AssertionError(f"schedule {name!r} vanished")  # pragma: no cover - raced a delete

    @app.get(f"{API}/schedules", dependencies=read, tags=["schedules"])
    async def list_schedules() -> list[ScheduleModel]:
        """Every schedule with its last run and next fire time."""
        return [ScheduleModel.of(i) for i in await tq.schedules()]

    @app.put(f"{API}/schedules/{{name}}", dependencies=write, tags=["schedules"])
    async def put_schedule(name: ScheduleName, req: ScheduleRequest) -> ScheduleModel:
        """Add or replace a schedule of a registered task; a new one starts from now."""
        if req.task not in tq.registry:
            raise UnknownTaskName(f"no task named {req.task!r} is registered (known: {', '.join(sorted(tq.registry))})")
        await tq.schedule(req.task, name=name, **req.model_dump(exclude={"task"}))
        return await one(name)

    @app.delete(
        f"{API}/schedules/{{name}}", dependencies=write, status_code=204, responses=NOT_FOUND, tags=["schedules"]
    )
    async def delete_schedule(name: ScheduleName) -> None:
        """Remove a schedule (404 if there is none)."""
        await tq.unschedule(name)

    @app.post(f"{API}/schedules/{{name}}/pause", dependencies=write, responses=NOT_FOUND, tags=["schedules"])
    async def pause_schedule(name: ScheduleName) -> ScheduleModel:
        """Pause a schedule: no runs until it is resumed."""
        await tq.pause_schedule(name)
        return await one(name)

    @app.post(f"{API}/schedules/{{name}}/resume", dependencies=write, responses=NOT_FOUND, tags=["schedules"])
    async def resume_schedule(name: ScheduleName) -> ScheduleModel:
        """Resume a schedule; the fire times it slept through are skipped."""
        await tq.pause_schedule(name, paused=False)
        return await one(name)

    @app.get(f"{API}/queues/{{queue}}/rate-limits", dependencies=read, tags=["queues"])
    async def rate_limits(queue: QueueName) -> list[LimiterModel]:
        """The queue's rate limits (its own, and each task name's) and when each next lets a task run."""
        return [LimiterModel.of(s) for s in await tq.rate_limits(queue)]
