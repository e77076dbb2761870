"""Every error taskq raises, under one root: :class:`TaskqError`.

Each class says when it is raised and what to do about it. Errors raised by the
Lua scripts arrive as short codes and are mapped to these classes by
:mod:`taskq.scripts` (one table, ``SCRIPT_ERRORS``).
"""

from __future__ import annotations


class TaskqError(Exception):
    """Root of every error taskq raises on purpose."""


class ValidationError(TaskqError, ValueError):
    """Bad input to a producer call; nothing was written to Redis."""


class InvalidPriority(ValidationError):
    """Priority is not an integer in 1..10 (10 is most urgent). It is never clamped."""


class InvalidQueueName(ValidationError):
    """Queue names are 1-64 characters of ``A-Z a-z 0-9 _ . -`` and start with a letter or digit."""


class InvalidDelay(ValidationError):
    """A delay is negative, not finite, or both ``delay_s`` and ``eta`` were given."""


class InvalidOption(ValidationError):
    """An enqueue or task option (retries, timeout, TTL, backoff, idempotency key) is out of range."""


class NotSerializable(ValidationError):
    """Arguments or a result are not JSON-serialisable. taskq never pickles: pass plain data."""


class PayloadTooLarge(ValidationError):
    """The JSON payload is larger than the queue's ``max_payload_bytes`` (default 1 MiB)."""


class InvalidArguments(ValidationError):
    """The arguments do not fit the registered task function's signature."""


class WorkflowCycle(InvalidOption):
    """A workflow's dependencies form a cycle (or name a node that is not in it): refused
    at submit, before anything is written."""


class WorkflowNotFound(TaskqError, LookupError):
    """No workflow with that id: it never existed, or its retention passed."""


class UnknownTaskName(TaskqError, LookupError):
    """No task of this name is registered with this TaskQueue (or with the worker that ran it)."""


class TaskNotFound(TaskqError, LookupError):
    """No task with this id exists: it never did, or its record expired after its TTL."""


class LeaseLost(TaskqError):
    """The worker's lease on a task is gone (expired and requeued, or released).

    A worker that sees this must drop the task: another attempt now owns it, and
    the stale completion was refused so the task is never finished twice.
    """


class NotCancellable(TaskqError):
    """The task already finished (succeeded, dead or cancelled) and cannot be cancelled."""


class TaskFailed(TaskqError):
    """Waiting for a result, the task ended in the dead-letter queue.

    ``error_type``, ``error`` and ``traceback`` carry what the last attempt raised.
    """

    def __init__(self, task_id: str, error_type: str, error: str, traceback: str) -> None:
        super().__init__(f"task {task_id} failed: {error_type}: {error}")
        self.task_id = task_id
        self.error_type = error_type
        self.error = error
        self.traceback = traceback


class TaskCancelled(TaskqError):
    """Waiting for a result, the task was cancelled."""


class ResultTimeout(TaskqError, TimeoutError):
    """The task did not finish within the time given to ``result(timeout_s=...)``."""


class TaskTimeout(TaskqError, TimeoutError):
    """Raised inside a worker when a task runs past its ``timeout_s``."""


class ServerUnavailable(TaskqError, ConnectionError):
    """No Redis could be reached or started (see the discovery order in :func:`taskq.server.find_server`)."""


class AccessDenied(TaskqError, PermissionError):
    """Redis refused this client's credentials, or a command or key to its ACL user (``NOPERM``):
    give the user the rules in docs/RELIABILITY.md ("ACL users")."""


class ServerFull(TaskqError):
    """Redis is at its ``maxmemory`` and evicts nothing (``OOM``): the call wrote nothing.
    Free memory (finished records expire) or raise the limit, then try again."""


class NotReplicated(TaskqError):
    """``durable=True``: the enqueue was written on the primary, but no replica acknowledged it in
    time, so a failover could lose it. Enqueue again with the same idempotency key to be sure."""


class NotSupportedOnCluster(TaskqError):
    """The operation cannot run on a Redis Cluster yet: workflows (``submit``, ``depends_on``)
    write several queues' slots in one script. Nothing was written. See docs/ARCHITECTURE.md,
    "Keys and the Cluster"; on one server (or Sentinel) they work."""


class ScriptError(TaskqError):
    """A Lua script returned an error code this version of taskq does not know."""


class Retry(Exception):
    """Raise inside a task to ask for another attempt after ``delay_s`` seconds.

    The attempt counts against ``max_retries``; with none left the task goes to the
    dead-letter queue. ``delay_s=None`` uses the task's backoff schedule.
    """

    def __init__(self, delay_s: float | None = None, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay_s = delay_s
