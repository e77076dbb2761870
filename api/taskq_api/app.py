"""The FastAPI app: ``create_app(tq_or_app_path, settings)``.

Every route calls taskq's public API only. Nothing connects to Redis at import or in
``create_app``; the first request does.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Annotated, Any

import redis.exceptions
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter

import taskq
from taskq import (
    AsyncTaskQueue,
    InvalidOption,
    NotCancellable,
    ServerUnavailable,
    TaskNotFound,
    TaskqError,
    TaskQueue,
    UnknownTaskName,
    WorkflowNotFound,
    prometheus_text,
)
from taskq_api import models as m
from taskq_api.hub import Hub
from taskq_api.routes_dashboard import add_dashboard_routes
from taskq_api.routes_schedules import add_schedule_routes
from taskq_api.routes_workflows import add_workflow_routes
from taskq_api.settings import API, MAX_LIST_LIMIT, Settings
from taskq_api.static import add_dashboard
from taskq_api.websocket import WEBSOCKET_DOC, add_websocket

log = logging.getLogger("taskq_api.access")
request_id_var: ContextVar[str] = ContextVar("taskq_api_request_id", default="-")

QueuePath = Annotated[str, Path(pattern=m.QUEUE_PATTERN, examples=["default"])]
TaskIdPath = Annotated[str, Path(min_length=1, max_length=200, examples=["default:01J..."])]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": m.Problem, "description": "Missing bearer token"},
    403: {"model": m.Problem, "description": "Wrong bearer token"},
    413: {"model": m.Problem, "description": "Body too large"},
    503: {"model": m.Problem, "description": "Redis unreachable"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": m.Problem, "description": "Unknown task id"}}
CANCEL_ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"model": m.Problem, "description": "Already finished"},
}
CONFIG_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": m.Problem, "description": "ShardsBusy or NotSupportedOnShardedQueue: nothing written"},
}
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ServerUnavailable, OSError)


def load_app(path: str) -> TaskQueue | AsyncTaskQueue:
    """Import ``module:attribute`` (the same APP the workers load) and return its TaskQueue."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidOption(f"APP must look like 'module:attribute' (e.g. myapp.tasks:tq), got {path!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise InvalidOption(f"cannot load APP {path!r}: {exc}") from None
    if not isinstance(obj, TaskQueue | AsyncTaskQueue):
        raise InvalidOption(f"{path} is a {type(obj).__name__}, not a taskq TaskQueue")
    return obj


def async_client(source: TaskQueue | AsyncTaskQueue) -> AsyncTaskQueue:
    """An AsyncTaskQueue on the same server and prefix, knowing the same registered tasks."""
    atq = AsyncTaskQueue(
        source.url,
        prefix=source.prefix,
        default_queue=source.default_queue,
        max_payload_bytes=source.max_payload_bytes,
        result_ttl_s=source.result_ttl_s,
    )
    atq.registry.update(source.registry)
    return atq


#: The request field a taskq validation error is about (for the 422 body's ``loc``).
FIELD_OF_ERROR = {
    "InvalidPriority": "priority",
    "InvalidQueueName": "queue",
    "InvalidDelay": "delay_s",
    "InvalidArguments": "args",
    "NotSerializable": "args",
    "PayloadTooLarge": "args",
    "InvalidShards": "shards",
}
#: taskq errors that are a conflict with the queue's state, not a bad field (409).
CONFLICT_ERRORS = frozenset({"ShardsBusy", "NotSupportedOnShardedQueue"})


def invalid(exc: Exception, loc: list[str], **extra: Any) -> JSONResponse:
    """A 422 in the same shape as FastAPI's own (``detail`` a list of field errors), plus
    ``error``, the taskq error type."""
    loc = [part for part in loc if part]
    detail = [{"loc": loc, "msg": str(exc), "type": type(exc).__name__}]
    return JSONResponse({"detail": detail, "error": type(exc).__name__, **extra}, status_code=422)


def problem(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    body = m.Problem(error=error, detail=detail, **extra).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status)


# ---------------------------------------------------------------------------
# Middleware: body size cap, request id, one JSON log line per request


class BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """Refuses bodies over ``max_body_bytes`` before they are parsed (by Content-Length, and by
    counting what arrives), gives each request an id (``X-Request-ID`` or a new one) and logs a
    JSON line when it ends."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.log_requests = settings.log_requests

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        rid = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            length = 0
        limit = self.max_body_bytes
        seen = 0

        async def counted_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            if length > limit:
                await self._too_large(scope, receive, send_with_id)
            else:
                try:
                    await self.app(scope, counted_receive, send_with_id)
                except BodyTooLarge:
                    await self._too_large(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            if self.log_requests:
                line = {
                    "ts": round(time.time(), 3),
                    "request_id": rid,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                }
                log.info(json.dumps(line))

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        response = problem(413, "BodyTooLarge", f"request body is over {self.max_body_bytes} bytes")
        await response(scope, receive, send)


# ---------------------------------------------------------------------------
# Auth


bearer = HTTPBearer(auto_error=False)


class AuthError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


def make_auth(settings: Settings, *, for_reads: bool) -> Callable[..., Awaitable[None]]:
    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if settings.token is None or (for_reads and not settings.auth_reads):
            return
        if credentials is None:
            raise AuthError(401, "this route needs 'Authorization: Bearer <token>'")
        if not settings.accepts(credentials.credentials):
            raise AuthError(403, "wrong token")

    return check


# ---------------------------------------------------------------------------
# The app


def create_app(tq_or_app_path: TaskQueue | AsyncTaskQueue | str, settings: Settings | None = None) -> FastAPI:
    """The HTTP API for the TaskQueue ``tq_or_app_path`` (an object, or ``module:attribute``)."""
    settings = settings or Settings.from_env()
    source = load_app(tq_or_app_path) if isinstance(tq_or_app_path, str) else tq_or_app_path
    tq = async_client(source)
    hub = Hub(tq)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()
        await tq.aclose()

    app = FastAPI(
        title="taskq HTTP API",
        version=taskq.__version__,
        description=WEBSOCKET_DOC,
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.state.tq = tq
    app.state.hub = hub
    app.state.settings = settings
    write = [Depends(make_auth(settings, for_reads=False))]
    read = [Depends(make_auth(settings, for_reads=True))]
    _add_error_handlers(app, tq)
    _add_task_routes(app, tq, write, read)
    _add_queue_routes(app, tq, write, read)
    _add_health_routes(app, tq, read)
    add_websocket(app, tq, hub, settings)
    add_dashboard_routes(app, tq, settings, read)
    add_schedule_routes(app, tq, write, read)
    add_workflow_routes(app, tq, read, write)
    app.state.dashboard = add_dashboard(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(RequestMiddleware, settings=settings)
    return app


def _add_error_handlers(app: FastAPI, tq: AsyncTaskQueue) -> None:
    @app.exception_handler(AuthError)
    async def auth_error(_: Request, exc: AuthError) -> JSONResponse:
        response = problem(exc.status, "Unauthorized" if exc.status == 401 else "Forbidden", exc.detail)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(UnknownTaskName)
    async def unknown_name(_: Request, exc: UnknownTaskName) -> JSONResponse:
        return invalid(exc, ["body", "name"], valid_names=sorted(tq.registry))

    @app.exception_handler(TaskNotFound)
    async def not_found(_: Request, exc: TaskNotFound) -> JSONResponse:
        return problem(404, "TaskNotFound", str(exc))

    @app.exception_handler(WorkflowNotFound)
    async def workflow_not_found(_: Request, exc: WorkflowNotFound) -> JSONResponse:
        return problem(404, "WorkflowNotFound", str(exc))

    @app.exception_handler(NotCancellable)
    async def not_cancellable(_: Request, exc: NotCancellable) -> JSONResponse:
        return problem(409, "NotCancellable", str(exc))

    @app.exception_handler(TaskqError)
    async def taskq_error(_: Request, exc: TaskqError) -> JSONResponse:
        if isinstance(exc, ServerUnavailable):
            return problem(503, "RedisUnavailable", str(exc))
        if type(exc).__name__ in CONFLICT_ERRORS:
            return problem(409, type(exc).__name__, str(exc))
        return invalid(exc, ["body", FIELD_OF_ERROR.get(type(exc).__name__, "")])

    for error in (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):

        @app.exception_handler(error)
        async def redis_down(_: Request, exc: Exception) -> JSONResponse:
            return problem(503, "RedisUnavailable", f"Redis is unreachable ({type(exc).__name__}); retry shortly")


def _submit_options(req: m.SubmitRequest, tq: AsyncTaskQueue) -> dict[str, Any]:
    if req.name not in tq.registry:
        raise UnknownTaskName(f"no task named {req.name!r} is registered (known: {', '.join(sorted(tq.registry))})")
    return req.options()


def _add_task_routes(app: FastAPI, tq: AsyncTaskQueue, write: list[Any], read: list[Any]) -> None:
    @app.post(f"{API}/tasks", status_code=201, dependencies=write, response_model=m.SubmitResponse, tags=["tasks"])
    async def submit(req: m.SubmitRequest) -> m.SubmitResponse:
        """Enqueue one task of a registered name; it carries the request id as ``meta.request_id``."""
        rid = request_id_var.get()
        handle = await tq.enqueue(req.name, req.args, req.kwargs, **_submit_options(req, tq), meta={"request_id": rid})
        return m.SubmitResponse(id=handle.id, request_id=rid)

    @app.post(f"{API}/tasks/bulk", status_code=201, dependencies=write, tags=["tasks"])
    async def submit_many(req: m.BulkSubmitRequest) -> m.BulkSubmitResponse:
        """Enqueue many tasks: one Redis round trip per chunk (as ``enqueue_many``)."""
        meta = {"request_id": request_id_var.get()}
        items = [
            {"name": t.name, "args": t.args, "kwargs": t.kwargs, **_submit_options(t, tq), "meta": meta}
            for t in req.tasks
        ]
        handles = await tq.enqueue_many(items)
        return m.BulkSubmitResponse(ids=[h.id for h in handles], request_id=meta["request_id"])

    @app.get(f"{API}/tasks/{{task_id}}", dependencies=read, responses=NOT_FOUND, tags=["tasks"])
    async def get_task(task_id: TaskIdPath) -> m.TaskModel:
        """A task: status, attempts, result, error and traceback, timestamps, worker."""
        return m.TaskModel.of(await tq.get(task_id))

    @app.post(f"{API}/tasks/{{task_id}}/cancel", dependencies=write, responses=CANCEL_ERRORS, tags=["tasks"])
    async def cancel_task(task_id: TaskIdPath) -> m.CancelResponse:
        """Cancel a queued or scheduled task at once; a running one gets its abort flag set."""
        return m.CancelResponse(id=task_id, outcome=str(await tq.cancel(task_id)))

    @app.get(f"{API}/registered-tasks", dependencies=read, tags=["tasks"])
    async def registered_tasks() -> list[m.RegisteredTaskModel]:
        """The task names that may be submitted, with a JSON schema of their parameters."""
        return [_registered(d) for _, d in sorted(tq.registry.items())]


def _registered(definition: Any) -> m.RegisteredTaskModel:
    try:
        parameters: dict[str, Any] = TypeAdapter(definition.fn).json_schema()
    except Exception:  # noqa: BLE001 - a signature pydantic cannot describe: any object
        parameters = {"type": "object"}
    return m.RegisteredTaskModel(
        name=definition.name,
        queue=definition.queue,
        priority=definition.priority,
        max_retries=definition.max_retries,
        timeout_s=definition.timeout_s,
        parameters=parameters,
    )


def _queue_model(q: Any) -> m.QueueModel:
    plain = taskq.Snapshot(taken_ms=q.taken_ms, queues=(q,), workers=()).to_dict()["queues"][0]
    plain["by_priority"] = {str(k): v for k, v in plain["by_priority"].items()}
    return m.QueueModel.model_validate(plain)


def _add_queue_routes(app: FastAPI, tq: AsyncTaskQueue, write: list[Any], read: list[Any]) -> None:
    @app.get(f"{API}/queues", dependencies=read, tags=["queues"])
    async def list_queues() -> list[m.QueueModel]:
        """Every known queue with its stats."""
        snap = await tq.snapshot(None, windows_s=(60,), running_limit=5)
        return [_queue_model(q) for q in snap.queues]

    @app.get(f"{API}/queues/{{queue}}", dependencies=read, tags=["queues"])
    async def get_queue(queue: QueuePath) -> m.QueueModel:
        """One queue's snapshot: depth by priority, running with lease ages, windows, settings."""
        snap = await tq.snapshot(queue, windows_s=(10, 60, 900), running_limit=20)
        return _queue_model(snap.queue(queue))

    @app.put(f"{API}/queues/{{queue}}/config", dependencies=write, responses=CONFIG_ERRORS, tags=["queues"])
    async def configure_queue(queue: QueuePath, req: m.QueueConfigRequest) -> m.QueueConfigResponse:
        """Set the queue's aging window and default priority (null turns a setting off), and its
        shard count (null or left out: as it is)."""
        await tq.configure_queue(queue, aging_s=req.aging_s, default_priority=req.default_priority, shards=req.shards)
        return m.QueueConfigResponse(
            queue=queue, aging_s=req.aging_s, default_priority=req.default_priority, shards=req.shards
        )

    @app.get(f"{API}/queues/{{queue}}/tasks", dependencies=read, tags=["queues"])
    async def list_tasks(
        queue: QueuePath,
        state: Annotated[m.TaskState, Query(description="queued, scheduled, running or dead")] = "queued",
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
    ) -> m.TaskPageModel:
        """A page of the queue's tasks in one state, in its own order (queued: claim order;
        scheduled: due time; running: lease deadline; dead: time of death). Pass
        ``next_cursor`` back to get the next page."""
        page = await tq.list_tasks(queue, state, cursor=cursor, limit=limit)
        return m.TaskPageModel(tasks=[m.TaskModel.of(t) for t in page.tasks], next_cursor=page.next_cursor)

    @app.get(f"{API}/queues/{{queue}}/dead", dependencies=read, tags=["dead letters"])
    async def list_dead(
        queue: QueuePath,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> list[m.DeadSummary]:
        """Dead tasks with error summaries, newest death last."""
        return [m.DeadSummary.of(t) for t in await tq.dead_letters(queue).list(limit, offset)]

    @app.get(f"{API}/queues/{{queue}}/dead/{{task_id}}", dependencies=read, responses=NOT_FOUND, tags=["dead letters"])
    async def get_dead(queue: QueuePath, task_id: TaskIdPath) -> m.TaskModel:
        """A dead task in full (error and traceback)."""
        task = await tq.get(task_id)
        if task.queue != queue or task.status != taskq.TaskStatus.DEAD:
            raise TaskNotFound(f"no dead task {task_id!r} in queue {queue!r}")
        return m.TaskModel.of(task)

    @app.post(f"{API}/queues/{{queue}}/dead/redrive", dependencies=write, tags=["dead letters"])
    async def redrive(queue: QueuePath, sel: m.DeadSelector) -> m.CountResponse:
        """Requeue dead tasks: by ids, by name, by error type, or all."""
        count = await tq.dead_letters(queue).requeue(sel.ids, name=sel.name, error_type=sel.error_type, all=sel.all)
        return m.CountResponse(count=count)

    @app.post(f"{API}/queues/{{queue}}/dead/purge", dependencies=write, tags=["dead letters"])
    async def purge(queue: QueuePath, sel: m.DeadSelector) -> m.CountResponse:
        """Delete dead tasks: by ids, by name, by error type, or all."""
        count = await tq.dead_letters(queue).purge(sel.ids, name=sel.name, error_type=sel.error_type, all=sel.all)
        return m.CountResponse(count=count)

    @app.get(f"{API}/workers", dependencies=read, tags=["workers"])
    async def list_workers() -> list[m.WorkerModel]:
        """Workers with their health and current tasks."""
        snap = await tq.snapshot([], windows_s=(10,), running_limit=0, lifetime=False)
        return [m.WorkerModel.of(w) for w in snap.workers]


def _add_health_routes(app: FastAPI, tq: AsyncTaskQueue, read: list[Any]) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> m.Health:
        """The process is alive (does not touch Redis)."""
        return m.Health(status="ok")

    @app.get("/readyz", tags=["health"], responses={503: {"model": m.Health}})
    async def readyz() -> Any:
        """Redis is reachable and the scripts are loaded."""
        try:
            # Cancelling a task that does not exist runs the cancel script (loading the scripts
            # again if Redis lost them) and writes nothing: it can only answer TaskNotFound.
            await tq.cancel(f"{tq.default_queue}:readyz-probe")
        except TaskNotFound:
            pass
        except REDIS_DOWN as exc:
            return JSONResponse(m.Health(status="unavailable", detail=str(exc)).model_dump(), status_code=503)
        return m.Health(status="ok")

    @app.get("/metrics", dependencies=read, response_class=PlainTextResponse, tags=["health"])
    async def metrics() -> PlainTextResponse:
        """Every queue's figures in the Prometheus text format."""
        snap = await tq.snapshot(None)
        return PlainTextResponse(prometheus_text(snap), media_type="text/plain; version=0.0.4")
