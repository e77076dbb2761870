"""Pydantic models of every request body and response of the HTTP API (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from taskq import Task, WorkerSnapshot
from taskq_api.settings import MAX_BULK_ITEMS

QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
QueueName = Annotated[str, Field(pattern=QUEUE_PATTERN, examples=["emails"])]
Priority = Annotated[StrictInt, Field(ge=1, le=10, description="1..10, 10 most urgent; never clamped")]
TaskId = Annotated[str, Field(min_length=1, max_length=200)]
TaskState = Literal["queued", "scheduled", "running", "dead"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitRequest(Strict):
    """One task to enqueue. Options left out come from the task's registration."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "myapp.tasks.add", "args": [1, 2], "priority": 7}]},
    )

    name: Annotated[str, Field(min_length=1, max_length=256)]
    args: Annotated[list[Any], Field(max_length=1000)] = []
    kwargs: dict[str, Any] = {}
    queue: QueueName | None = None
    priority: Priority | None = None
    delay_s: Annotated[float, Field(ge=0, le=10 * 365 * 86400, allow_inf_nan=False)] = 0.0
    idempotency_key: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    max_retries: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=30 * 86400, allow_inf_nan=False)] | None = None

    def options(self) -> dict[str, Any]:
        """The enqueue options that were given (None means "the task's default")."""
        keys = ("queue", "priority", "idempotency_key", "max_retries", "timeout_s")
        options = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.delay_s:
            options["delay_s"] = self.delay_s
        return options


class SubmitResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "default:01J...", "request_id": "3f2a..."}]})

    id: str
    request_id: str


class BulkSubmitRequest(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"tasks": [{"name": "myapp.tasks.add", "args": [1, 2]}]}]}
    )

    tasks: Annotated[list[SubmitRequest], Field(min_length=1, max_length=MAX_BULK_ITEMS)]


class BulkSubmitResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"ids": ["default:01J..."], "request_id": "3f2a..."}]})

    ids: list[str]
    request_id: str


class TaskModel(BaseModel):
    """A task record; times are Unix milliseconds (server clock)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "default:01J...",
                    "name": "myapp.tasks.add",
                    "queue": "default",
                    "status": "succeeded",
                    "priority": 5,
                    "args": [1, 2],
                    "kwargs": {},
                    "attempts": 1,
                    "max_retries": 3,
                    "enqueued_ms": 1700000000000,
                    "result": 3,
                    "meta": {"request_id": "3f2a..."},
                }
            ]
        }
    )

    id: str
    name: str
    queue: str
    status: Literal["scheduled", "waiting", "queued", "running", "succeeded", "dead", "cancelled"]
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    max_retries: int
    enqueued_ms: int
    due_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    timeout_s: float | None = None
    worker: str | None = None
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    idempotency_key: str | None = None
    cancel_requested: bool = False
    meta: dict[str, str] = Field(default_factory=dict)
    """Labels given at enqueue; a task submitted over HTTP has its request's ``request_id``."""
    progress: dict[str, Any] | None = None
    """The task's last ``current_task().progress(done, total, message)``."""
    workflow_id: str | None = None
    """The workflow (chain, group, depends_on) this task is a node of: GET /workflows/{id}."""

    @classmethod
    def of(cls, task: Task) -> TaskModel:
        return cls(
            id=task.id,
            name=task.name,
            queue=task.queue,
            status=task.status.value,
            priority=task.priority,
            args=task.args,
            kwargs=task.kwargs,
            attempts=task.attempts,
            max_retries=task.max_retries,
            enqueued_ms=task.enqueued_ms,
            due_ms=task.due_ms,
            started_ms=task.started_ms,
            finished_ms=task.finished_ms,
            timeout_s=task.timeout_s,
            worker=task.worker,
            result=task.result,
            error_type=task.error_type,
            error=task.error,
            traceback=task.traceback,
            idempotency_key=task.idempotency_key,
            cancel_requested=task.cancel_requested,
            meta=task.meta,
            progress=task.progress,
            workflow_id=task.workflow_id,
        )


class CancelResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "default:01J...", "outcome": "cancelled"}]})

    id: str
    outcome: str


class TaskPageModel(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"tasks": [], "next_cursor": None}]})

    tasks: list[TaskModel]
    next_cursor: str | None


class QueueModel(BaseModel):
    """A queue's snapshot: depth by priority, scheduled, running (with lease ages), dead,
    lifetime counters and latency, windows of throughput and latency, settings."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"queue": "default", "taken_ms": 1700000000000, "queued": 3, "scheduled": 0, "running": 1}]
        }
    )

    queue: str
    taken_ms: int
    queued: int
    by_priority: dict[str, int]
    scheduled: int
    next_due_ms: int | None
    running: int
    overdue: int
    dead: int
    counters: dict[str, int]
    latency: dict[str, Any]
    windows: list[dict[str, Any]]
    running_tasks: list[dict[str, Any]]
    aging_s: float | None
    default_priority: int | None
    events_length: int
    retained_finished: int | None = None
    shards: int = 1
    """Sub-queues of a sharded queue (1: not sharded); the figures are then theirs merged."""


class QueueConfigRequest(Strict):
    """Queue settings; a field left out (or null) turns that setting off."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"aging_s": 60, "default_priority": 5}]})

    aging_s: Annotated[float, Field(gt=0, le=30 * 86400, allow_inf_nan=False)] | None = None
    default_priority: Priority | None = None
    shards: (
        Annotated[
            int,
            Field(
                strict=True,
                description="Keep the queue in this many sub-queues (1..64; 1 unshards), spread over a "
                "Redis Cluster's masters; left out or null: as it is. Out of range: 422 InvalidShards; "
                "while the current sub-queues hold tasks: 409 ShardsBusy; on a rate-limited queue: "
                "409 NotSupportedOnShardedQueue. Nothing is written then.",
            ),
        ]
        | None
    ) = None


class QueueConfigResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"queue": "default", "aging_s": 60, "default_priority": 5, "shards": None}]}
    )

    queue: str
    aging_s: float | None
    default_priority: int | None
    shards: int | None = None
    """The shard count set by this request (None: left as it was)."""


class DeadSummary(BaseModel):
    """A dead task, in short."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "default:01J...",
                    "name": "myapp.tasks.add",
                    "attempts": 4,
                    "error_type": "ValueError",
                    "error": "boom",
                    "finished_ms": 1700000000000,
                }
            ]
        }
    )

    id: str
    name: str
    attempts: int
    error_type: str | None
    error: str | None
    finished_ms: int | None

    @classmethod
    def of(cls, task: Task) -> DeadSummary:
        return cls(
            id=task.id,
            name=task.name,
            attempts=task.attempts,
            error_type=task.error_type,
            error=(task.error or "")[:500] or None,
            finished_ms=task.finished_ms,
        )


class DeadSelector(Strict):
    """Which dead tasks: exactly one of ``ids``, ``name``, ``error_type`` or ``all``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"error_type": "TimeoutError"}]})

    ids: Annotated[list[TaskId], Field(min_length=1, max_length=10_000)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    error_type: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_selector(self) -> DeadSelector:
        given = [self.ids is not None, self.name is not None, self.error_type is not None, self.all]
        if sum(given) != 1:
            raise ValueError("give exactly one of ids, name, error_type or all=true")
        return self


class CountResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 3}]})

    count: int


class WorkerModel(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": "host-123-ab", "health": "healthy", "heartbeat_ms": 1700000000000, "current": []}]
        }
    )

    id: str
    health: str
    heartbeat_ms: int
    heartbeat_age_ms: int
    host: str | None = None
    pid: int | None = None
    queues: list[str] = []
    concurrency: int | None = None
    started_ms: int | None = None
    interval_ms: int | None = None
    processed: int | None = None
    failed: int | None = None
    current: list[str] = []

    @classmethod
    def of(cls, w: WorkerSnapshot) -> WorkerModel:
        return cls(
            id=w.id,
            health=w.health.value,
            heartbeat_ms=w.heartbeat_ms,
            heartbeat_age_ms=w.heartbeat_age_ms,
            host=w.host,
            pid=w.pid,
            queues=list(w.queues),
            concurrency=w.concurrency,
            started_ms=w.started_ms,
            interval_ms=w.interval_ms,
            processed=w.processed,
            failed=w.failed,
            current=list(w.current),
        )


class RegisteredTaskModel(BaseModel):
    """A task name that may be submitted, with its defaults and a JSON schema of its parameters."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "myapp.tasks.add",
                    "queue": "default",
                    "priority": 5,
                    "max_retries": 3,
                    "timeout_s": None,
                    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
                }
            ]
        }
    )

    name: str
    queue: str
    priority: int | None
    max_retries: int
    timeout_s: float | None
    parameters: dict[str, Any]


class Problem(BaseModel):
    """An error: ``error`` is the taskq error type (or an HTTP reason), ``detail`` one line."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "TaskNotFound", "detail": "no task x"}]})

    error: str
    detail: str
    valid_names: list[str] | None = None


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str
    detail: str | None = None
