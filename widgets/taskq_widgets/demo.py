"""A small set of demo tasks for the Playground and the teaching notebooks.

Every task takes ``fail_times``: it fails (raises :class:`PlannedFailure`) on its first
``fail_times`` attempts and then succeeds. The attempt number comes from the task's record
in Redis (``taskq.current_task().attempt``), not from process memory, so the count holds
across worker processes and restarts. Retries use a short backoff (0.1 to 2 s) so lessons
do not wait.

Serve them from a shell (the URL comes from ``--url`` or ``TASKQ_REDIS_URL``, the key
prefix from ``TASKQ_PREFIX``)::

    taskq --url redis://localhost:6379/0 worker taskq_widgets.demo:tq

``tq`` is made on first use, so importing this module for its functions (as the Playground
does) connects to nothing; :func:`register` adds the tasks to any TaskQueue.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskq import Backoff, TaskQueue, current_task

#: The retry schedule of the demo tasks: quick, so a lesson sees retries at once.
DEMO_BACKOFF = Backoff(base_s=0.2, cap_s=2.0, min_s=0.1, jitter=0.5)
#: Retries a demo task gets after its first attempt (``demo.fail`` gets 2).
DEMO_MAX_RETRIES = 5


class PlannedFailure(RuntimeError):
    """Raised by a demo task on an attempt it was asked to fail (``fail_times``)."""


def fail_if_planned(fail_times: int) -> int:
    """Raise :class:`PlannedFailure` while this is one of the first ``fail_times``
    attempts of the running task; return the attempt number otherwise."""
    context = current_task()
    attempt = context.attempt if context is not None else 1
    if attempt <= fail_times:
        raise PlannedFailure(f"planned failure: attempt {attempt}, asked to fail {fail_times} time(s)")
    return attempt


def _sleep_unless_cancelled(seconds: float) -> bool:
    """Sleep ``seconds`` in small steps, stopping early once the task is cancelled; True
    if it slept the whole time."""
    context = current_task()
    pause = threading.Event()
    waited = 0.0
    while waited < seconds:
        if context is not None and context.aborted:
            return False
        step = min(0.05, seconds - waited)
        pause.wait(step)
        waited += step
    return True


def quick(fail_times: int = 0) -> int:
    """Returns at once (after any planned failures): the attempt that succeeded."""
    return fail_if_planned(fail_times)


def work(seconds: float = 0.2, fail_times: int = 0) -> float:
    """Holds a thread for ``seconds`` (a sync task, run in the worker's thread pool)."""
    fail_if_planned(fail_times)
    _sleep_unless_cancelled(seconds)
    return seconds


def slow(seconds: float = 10.0, fail_times: int = 0) -> float:
    """A long task, for the crash-recovery lesson: kill its worker while it runs and watch
    the lease expire and another worker finish it. Cancellable."""
    fail_if_planned(fail_times)
    _sleep_unless_cancelled(seconds)
    return seconds


async def async_work(seconds: float = 0.2, fail_times: int = 0) -> float:
    """An async task: waits ``seconds`` on the worker's event loop, holding no thread."""
    fail_if_planned(fail_times)
    await asyncio.sleep(seconds)
    return seconds


def fail() -> None:
    """Fails on every attempt: after its 2 retries it lands in the dead-letter queue."""
    raise PlannedFailure("this task always fails")


@dataclass(frozen=True, slots=True)
class DemoTask:
    """A demo task: its registered name, function and retry budget."""

    name: str
    fn: Callable[..., Any]
    description: str
    """One line for the Playground's menu."""
    max_retries: int = DEMO_MAX_RETRIES
    takes_seconds: bool = False


DEMO_TASKS: dict[str, DemoTask] = {
    t.name: t
    for t in (
        DemoTask("demo.quick", quick, "returns at once"),
        DemoTask("demo.work", work, "sync, sleeps 'runs s' in a thread", takes_seconds=True),
        DemoTask("demo.slow", slow, "sync, long (kill its worker!)", takes_seconds=True),
        DemoTask("demo.async_work", async_work, "async, awaits 'runs s'", takes_seconds=True),
        DemoTask("demo.fail", fail, "always fails: dead after 2 retries", max_retries=2),
    )
}


def register(tq: Any) -> list[str]:
    """Register the demo tasks on ``tq`` (a TaskQueue or AsyncTaskQueue), each once; returns
    their names. Tasks already registered elsewhere on ``tq`` stay as they are."""
    for t in DEMO_TASKS.values():
        existing = tq.registry.get(t.name)
        if existing is None or existing.fn is not t.fn:
            tq.task(t.fn, name=t.name, max_retries=t.max_retries, backoff=DEMO_BACKOFF)
    return list(DEMO_TASKS)


def make_app(url: str | None = None) -> TaskQueue:
    """A TaskQueue with the demo tasks registered (key prefix from ``TASKQ_PREFIX``)."""
    app = TaskQueue(url, prefix=os.environ.get("TASKQ_PREFIX") or "taskq")
    register(app)
    return app


_app: TaskQueue | None = None


def __getattr__(name: str) -> Any:
    """``tq``: the demo app, made on first use (``taskq worker taskq_widgets.demo:tq``)."""
    global _app
    if name == "tq":
        if _app is None:
            _app = make_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEMO_BACKOFF",
    "DEMO_MAX_RETRIES",
    "DEMO_TASKS",
    "DemoTask",
    "PlannedFailure",
    "async_work",
    "fail",
    "fail_if_planned",
    "make_app",
    "quick",
    "register",
    "slow",
    "work",
]
