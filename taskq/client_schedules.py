"""The schedule and rate-limit methods of the blocking client (:class:`taskq.TaskQueue`
mixes them in): thin calls of the flows in :mod:`taskq.schedules` and :mod:`taskq.ratelimit`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from taskq.executor import AsyncExecutor, SyncExecutor
from taskq.ops import Operations
from taskq.plan import Flow
from taskq.ratelimit import LimiterState, rate_state_flow
from taskq.schedules import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_MISSED,
    Schedule,
    ScheduleInfo,
    TickResult,
    build_schedule,
    pause_schedule_flow,
    put_schedule_flow,
    remove_schedule_flow,
    schedules_flow,
    tick_flow,
)
from taskq.task import TaskSpec


class ScheduleMethods:
    """Periodic tasks and rate-limit state, blocking (a mixin of :class:`TaskQueue`)."""

    ops: Operations
    _exec: SyncExecutor

    _spec: Callable[..., TaskSpec]  # ClientBase's
    _lookup_flow: Callable[..., Flow[None]]

    def schedule(
        self,
        task: str,
        *,
        cron: str | None = None,
        every_s: float | None = None,
        timezone: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        misfire: str = "once",
        grace_s: float = DEFAULT_GRACE_S,
        max_missed: int = DEFAULT_MAX_MISSED,
        force: bool = False,
    ) -> Schedule:
        """Run task ``task`` at every fire time of ``cron`` (in ``timezone``, an IANA name) or
        every ``every_s`` seconds, on every worker's tick, exactly once per fire time.
        Stored in Redis under ``name`` (default: the task name), replacing a schedule of that
        name. The task's options (queue, priority, retries, timeout) are those an enqueue
        would take. ``misfire``: fire times missed by over ``grace_s`` (every worker was down)
        run "once" (one run for all), "all" (each, the latest ``max_missed``) or "skip"."""
        self._exec.drive(self._lookup_flow([task]))
        s = _build(
            self,
            task,
            cron=cron,
            every_s=every_s,
            timezone=timezone,
            args=args,
            kwargs=kwargs,
            name=name,
            queue=queue,
            priority=priority,
            misfire=misfire,
            grace_s=grace_s,
            max_missed=max_missed,
            force=force,
        )
        return self._exec.drive(put_schedule_flow(self.ops, s))

    def schedules(self) -> list[ScheduleInfo]:
        """Every schedule, with its last fire time, last task and next fire time."""
        return self._exec.drive(schedules_flow(self.ops))

    def unschedule(self, name: str) -> None:
        """Remove schedule ``name`` (:class:`TaskNotFound` if there is none)."""
        self._exec.drive(remove_schedule_flow(self.ops, name))

    def pause_schedule(self, name: str, paused: bool = True) -> None:
        """Pause (or, ``paused=False``, resume) schedule ``name``; resumed, it starts from now."""
        self._exec.drive(pause_schedule_flow(self.ops, name, paused))

    def tick_schedules(self, queues: Sequence[str] | None = None) -> TickResult:
        """Enqueue the due fire times of every schedule now (what each worker does on its
        own; safe to call from anywhere at any time, as often as you like)."""
        return self._exec.drive(tick_flow(self.ops, queues))

    def rate_limits(self, queue: str) -> list[LimiterState]:
        """The rate limits of ``queue`` (its own, and each task name's) and their state now."""
        return self._exec.drive(rate_state_flow(self.ops, queue))


class AsyncScheduleMethods:
    """Periodic tasks and rate-limit state, asyncio (a mixin of :class:`AsyncTaskQueue`);
    each is the coroutine of the :class:`ScheduleMethods` method of the same name."""

    ops: Operations
    _exec: AsyncExecutor
    _spec: Callable[..., TaskSpec]  # ClientBase's
    _lookup_flow: Callable[..., Flow[None]]

    async def schedule(self, task: str, **options: Any) -> Schedule:
        """See :meth:`ScheduleMethods.schedule`."""
        await self._exec.drive(self._lookup_flow([task]))
        return await self._exec.drive(put_schedule_flow(self.ops, _build(self, task, **options)))

    async def schedules(self) -> list[ScheduleInfo]:
        return await self._exec.drive(schedules_flow(self.ops))

    async def unschedule(self, name: str) -> None:
        await self._exec.drive(remove_schedule_flow(self.ops, name))

    async def pause_schedule(self, name: str, paused: bool = True) -> None:
        await self._exec.drive(pause_schedule_flow(self.ops, name, paused))

    async def tick_schedules(self, queues: Sequence[str] | None = None) -> TickResult:
        return await self._exec.drive(tick_flow(self.ops, queues))

    async def rate_limits(self, queue: str) -> list[LimiterState]:
        return await self._exec.drive(rate_state_flow(self.ops, queue))


def _build(
    client: ScheduleMethods | AsyncScheduleMethods,
    task: str,
    *,
    cron: str | None = None,
    every_s: float | None = None,
    timezone: str = "UTC",
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    queue: str | None = None,
    priority: int | None = None,
    misfire: str = "once",
    grace_s: float = DEFAULT_GRACE_S,
    max_missed: int = DEFAULT_MAX_MISSED,
    force: bool = False,
) -> Schedule:
    """A validated schedule; its task options are those an enqueue of ``task`` would take."""
    spec = client._spec(task, args, kwargs, queue=queue, priority=priority, force=force)
    return build_schedule(
        name or task,
        task,
        queue=spec.queue,
        cron=cron,
        every_s=every_s,
        timezone=timezone,
        args=args,
        kwargs=kwargs,
        priority=spec.priority,
        max_retries=spec.max_retries,
        timeout_s=spec.timeout_ms / 1000 if spec.timeout_ms else None,
        result_ttl_s=spec.result_ttl_s,
        misfire=misfire,
        grace_s=grace_s,
        max_missed=max_missed,
    )
