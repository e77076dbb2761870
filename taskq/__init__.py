"""taskq: a small, fast, readable distributed task queue on Redis."""

from taskq.backoff import Backoff, backoff_delay_s
from taskq.client import AsyncDeadLetters, AsyncTaskHandle, AsyncTaskQueue, DeadLetters, TaskHandle, TaskQueue
from taskq.errors import (
    InvalidArguments,
    InvalidDelay,
    InvalidOption,
    InvalidPriority,
    InvalidQueueName,
    LeaseLost,
    NotCancellable,
    NotSerializable,
    PayloadTooLarge,
    ResultTimeout,
    Retry,
    ServerUnavailable,
    TaskCancelled,
    TaskFailed,
    TaskNotFound,
    TaskqError,
    TaskTimeout,
    UnknownTaskName,
    ValidationError,
)
from taskq.ops import QueueCounts
from taskq.registry import TaskFunction
from taskq.server import EmbeddedServer
from taskq.task import Task, TaskStatus
from taskq.telemetry import (
    Event,
    Latency,
    QueueSnapshot,
    RunningTask,
    Snapshot,
    WindowStats,
    WorkerHealth,
    WorkerSnapshot,
    prometheus_text,
)
from taskq.worker import BackgroundWorker, TaskContext, Worker, current_task

__version__ = "0.1.0"

__all__ = [
    "AsyncDeadLetters",
    "AsyncTaskHandle",
    "AsyncTaskQueue",
    "BackgroundWorker",
    "Backoff",
    "DeadLetters",
    "EmbeddedServer",
    "Event",
    "InvalidArguments",
    "InvalidDelay",
    "InvalidOption",
    "InvalidPriority",
    "InvalidQueueName",
    "Latency",
    "LeaseLost",
    "NotCancellable",
    "NotSerializable",
    "PayloadTooLarge",
    "QueueCounts",
    "QueueSnapshot",
    "ResultTimeout",
    "Retry",
    "RunningTask",
    "ServerUnavailable",
    "Snapshot",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskFailed",
    "TaskFunction",
    "TaskHandle",
    "TaskNotFound",
    "TaskQueue",
    "TaskStatus",
    "TaskTimeout",
    "TaskqError",
    "UnknownTaskName",
    "ValidationError",
    "WindowStats",
    "Worker",
    "WorkerHealth",
    "WorkerSnapshot",
    "backoff_delay_s",
    "current_task",
    "prometheus_text",
    "__version__",
]
