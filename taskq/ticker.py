"""The schedule tick and the publishing of task settings, one part of the worker
(:class:`taskq.worker.Worker` mixes it in).

At start a worker publishes the rate limits of its registered tasks (``@tq.task(rate=...)``)
to their queues' ``limits`` hashes, before it claims anything, and stores the schedules its
tasks declare (``@tq.task(schedule=...)``), keeping a paused one paused. Then, on every
worker, the tick loop (:func:`taskq.schedules.tick_flow`) enqueues due fire times exactly
once and sleeps until the next fire time (re-reading the definitions at least every
``SCHEDULE_RELOAD_S``, so a schedule added from the CLI or the API starts promptly).
"""

from __future__ import annotations

import logging

from taskq.errors import TaskqError
from taskq.executor import AsyncExecutor
from taskq.ops import Operations
from taskq.ratelimit import RateLimit, set_limits_plan
from taskq.registry import TaskDef
from taskq.schedule_time import check_schedule_spec
from taskq.schedules import build_schedule, put_schedule_flow, tick_flow
from taskq.task import DEFAULT_RESULT_TTL_S
from taskq.worker_context import QueueSelection

log = logging.getLogger("taskq.worker")

#: The longest a worker's tick sleeps before it looks at the schedules again.
SCHEDULE_RELOAD_S = 2.0
#: A tick wakes this long after a fire time (the server's clock may run a little behind ours).
TICK_LATE_S = 0.002


class ScheduleTicker:
    """Publishes task settings and runs the schedule tick (a mixin of :class:`~taskq.worker.Worker`)."""

    ops: Operations
    registry: dict[str, TaskDef]
    selection: QueueSelection
    _stopping: bool
    _exec: AsyncExecutor

    async def _sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def _publish_task_settings(self) -> None:
        """Rate limits of this worker's tasks (set, or cleared where a task has none) and
        the schedules they declare."""
        by_queue: dict[str, dict[str, RateLimit | None]] = {}
        for d in self.registry.values():
            by_queue.setdefault(d.queue, {})[d.name] = d.rate
        for queue, limits in by_queue.items():
            await self._exec.run(set_limits_plan(self.ops, queue, limits))
        for d in self.registry.values():
            if d.schedule is None:
                continue
            rule = check_schedule_spec(d.schedule)
            s = build_schedule(
                d.name,
                d.name,
                queue=d.queue,
                cron=rule.cron,
                every_s=rule.every_s,
                priority=d.priority,
                max_retries=d.max_retries,
                timeout_s=d.timeout_s,
                result_ttl_s=d.result_ttl_s if d.result_ttl_s is not None else DEFAULT_RESULT_TTL_S,
            )
            await self._exec.drive(put_schedule_flow(self.ops, s, keep_paused=True))

    async def _schedule_loop(self) -> None:
        while not self._stopping:
            wait_s = SCHEDULE_RELOAD_S
            try:
                result = await self._exec.drive(tick_flow(self.ops, self.selection.queues))
            except TaskqError as exc:
                log.warning("schedule tick failed: %s", exc)
            except Exception:  # a bad schedule must not stop the ticking for good
                log.exception("schedule tick failed")
            else:
                if result.enqueued:
                    log.debug("schedule tick: %d tasks enqueued", result.enqueued)
                if result.next_fire_ms is not None:
                    wait_s = min(wait_s, max(0.0, (result.next_fire_ms - result.now_ms) / 1000) + TICK_LATE_S)
            await self._sleep(wait_s)
