"""Registered task functions: what a worker may run, and the ``@tq.task`` decorator's product."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from taskq.backoff import Backoff
from taskq.errors import InvalidArguments, InvalidOption
from taskq.keys import check_queue_name
from taskq.task import check_non_negative_int, check_positive_s, check_priority

P = ParamSpec("P")
R = TypeVar("R")
H = TypeVar("H", covariant=True)

#: Keyword arguments of ``TaskFunction.enqueue`` that are options, not task arguments.
ENQUEUE_OPTIONS = frozenset(
    {"queue", "priority", "delay_s", "eta", "idempotency_key", "max_retries", "timeout_s", "result_ttl_s"}
)


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A registered task: its function and its defaults."""

    name: str
    fn: Callable[..., Any]
    queue: str
    priority: int | None
    max_retries: int
    timeout_s: float | None
    backoff: Backoff
    result_ttl_s: int | None
    signature: inspect.Signature | None = None  # None where the function has none to read
    is_async: bool = False

    def check_arguments(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> None:
        """Raise :class:`InvalidArguments` if the call would not bind to the function."""
        if self.signature is None:
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"task {self.name!r}: {exc}") from None


def make_task_def(
    fn: Callable[..., Any],
    *,
    name: str | None,
    queue: str,
    priority: int | None,
    max_retries: int,
    timeout_s: float | None,
    backoff: Backoff | None,
    result_ttl_s: int | None,
) -> TaskDef:
    """Validate decorator options and the function's parameters."""
    check_queue_name(queue)
    if priority is not None:
        check_priority(priority)
    check_non_negative_int("max_retries", max_retries, upper=1000)
    if timeout_s is not None:
        check_positive_s("timeout_s", timeout_s)
    try:
        signature: inspect.Signature | None = inspect.signature(fn)
    except ValueError:  # some builtins have no signature to read
        signature = None
    clash = ENQUEUE_OPTIONS & set(signature.parameters if signature else ())
    if clash:
        raise InvalidOption(
            f"task {fn.__qualname__} has parameters named like enqueue options ({', '.join(sorted(clash))}); "
            "rename them, or enqueue it with tq.enqueue(name, args=..., kwargs=...)"
        )
    return TaskDef(
        name=name or f"{fn.__module__}.{fn.__qualname__}",
        fn=fn,
        queue=queue,
        priority=priority,
        max_retries=max_retries,
        timeout_s=timeout_s,
        backoff=backoff or Backoff(),
        result_ttl_s=result_ttl_s,
        signature=signature,
        is_async=inspect.iscoroutinefunction(fn),
    )


class _Enqueuer(Protocol[H]):
    def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> H: ...


class TaskFunction(Generic[P, R, H]):
    """A registered task. Call it to run it here and now; ``.enqueue(...)`` to queue it.

    ``enqueue`` takes the task's own arguments plus the keyword options ``queue``,
    ``priority``, ``delay_s``, ``eta``, ``idempotency_key``, ``max_retries``,
    ``timeout_s`` and ``result_ttl_s``.
    """

    def __init__(self, definition: TaskDef, owner: _Enqueuer[H]) -> None:
        self.definition = definition
        self._owner = owner
        functools.update_wrapper(self, definition.fn)

    @property
    def name(self) -> str:
        return self.definition.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.definition.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def enqueue(self, *args: Any, **kwargs: Any) -> H:
        """Queue a run of this task; returns a handle (awaitable on an AsyncTaskQueue)."""
        return self._owner._enqueue_def(self.definition, args, kwargs)

    def __repr__(self) -> str:
        return f"<TaskFunction {self.definition.name} queue={self.definition.queue}>"
