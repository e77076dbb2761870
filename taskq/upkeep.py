"""Upkeep, one part of the worker (:class:`taskq.worker.Worker` mixes it in): the heartbeat
(extends the leases of the tasks held, learns of cancellations and lost leases, refreshes
the worker's registration and publishes its tasks) and the maintenance loop (the reaper and
the promoter; idempotent, atomic scripts, so every worker may run them at once).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from typing import Any

from taskq.errors import ServerFull, ServerUnavailable
from taskq.execution import _Held
from taskq.executor import AsyncExecutor
from taskq.ops import Operations
from taskq.registry import TaskDef
from taskq.shards import NotSupportedOnShardedQueue, rated_queues, selection_flow, served_queues
from taskq.worker_context import QueueSelection

log = logging.getLogger("taskq.worker")

#: A call Redis refused for now (full, or unreachable): logged, and made again later.
TRY_AGAIN = (ServerFull, ServerUnavailable)


async def cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again any still running
    every half second: a cancellation that lands inside a Redis call can come out as that
    call's error (ServerUnavailable), which a helper loop logs and goes on from, so a single
    cancel may not end it (a worker once never stopped that way)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    await asyncio.gather(*tasks, return_exceptions=True)  # collect their outcomes


class WorkerUpkeep:
    """Heartbeat and maintenance (a mixin of :class:`~taskq.worker.Worker`)."""

    id: str
    ops: Operations
    registry: dict[str, TaskDef]
    selection: QueueSelection
    concurrency: int
    lease_ms: int
    heartbeat_s: float
    maintenance_s: float
    started_ms: int
    processed: int
    failed: int
    _clock_offset_ms: int | None
    _stall_s: float
    _claim_progress_at: float
    _claim_waiting: bool
    _held: dict[str, _Held]
    _stopping: bool
    _rng: random.Random
    _exec: AsyncExecutor

    @property
    def running_ids(self) -> list[str]:
        raise NotImplementedError

    async def _sleep(self, seconds: float) -> None:
        raise NotImplementedError

    # -- is the claim loop making progress? ------------------------------------------

    def _claim_progress(self, *, waiting: bool) -> None:
        """The claim loop is alive: it just claimed, or starts or ends a wait for work or slots."""
        self._claim_waiting = waiting
        self._claim_progress_at = time.monotonic()

    def _claim_stalled_s(self) -> float | None:
        """How long the claim loop has gone without progress, if that is a stall (longer than
        two socket timeouts and a heartbeat, not waiting for work, not shutting down)."""
        if self._stopping or self._claim_waiting:
            return None
        quiet_s = time.monotonic() - self._claim_progress_at
        return quiet_s if quiet_s > self._stall_s else None

    # -- heartbeat -------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:  # runs through the grace period too: running tasks keep their leases
            await asyncio.sleep(self.heartbeat_s)
            try:
                await self._heartbeat()
            except TRY_AGAIN as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # the worker's stop, come out as a Redis error
                    raise asyncio.CancelledError from exc
                log.warning("heartbeat failed: %s", exc)

    async def _heartbeat(self) -> None:
        by_queue: dict[str, list[_Held]] = {}
        for held in list(self._held.values()):
            if not held.released:
                by_queue.setdefault(held.task.queue, []).append(held)
        for queue, helds in by_queue.items():
            leases = [(h.task.id, h.task.token) for h in helds]
            states = await self._exec.run(self.ops.extend(queue, leases, self.lease_ms))
            for held, state in zip(helds, states, strict=True):
                self._apply_lease_state(held, state)
        stalled_s = self._claim_stalled_s()
        if stalled_s is not None:  # leases stay extended (their tasks run); the registration does not
            log.warning(
                "claim loop stalled for %.1fs (Redis calls not coming back): not refreshing this worker's "
                "registration, so it shows as stale until claiming works again",
                stalled_s,
            )
            return
        info: dict[str, Any] = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(served_queues(self.selection)),  # a sharded queue by its name
            "concurrency": self.concurrency,
            "ttl_ms": int(self._registration_ttl_s() * 1000),
            "interval_ms": round(self.heartbeat_s * 1000),
            "processed": self.processed,
            "failed": self.failed,
            "current": self.running_ids,
        }
        # The first heartbeat's time is the start ('': now), kept if the registration expires.
        info["started_ms"] = "" if self._clock_offset_ms is None else self.started_ms
        # The script stamps the heartbeat with the server's clock; the worker registry (another
        # Cluster slot) gets this clock corrected by the offset the last reply showed.
        local_ms = int(time.time() * 1000)
        registry_ms = local_ms + (self._clock_offset_ms or 0)
        tasks = list(self.registry.values())  # published: producers without the code enqueue by name
        plan = self.ops.worker_heartbeat(info, self._registration_ttl_s(), registry_ms=registry_ms, tasks=tasks)
        beat_ms, self.started_ms = await self._exec.run(plan)
        self._clock_offset_ms = beat_ms - local_ms

    def _registration_ttl_s(self) -> float:
        return max(3 * self.heartbeat_s, 2.0)

    def _apply_lease_state(self, held: _Held, state: int) -> None:
        runner_alive = held.runner is not None and not held.runner.done()
        if state == 0 and runner_alive:
            log.warning("task %s: lease lost (expired and requeued); dropping this attempt", held.task.id)
            held.lost = True
            held.context.aborted = True
            if held.runner is not None:
                held.runner.cancel()
        elif state == 2 and not held.context.aborted:
            log.info("task %s: cancellation requested", held.task.id)
            held.context.aborted = True
            definition = self.registry.get(held.task.name)
            if held.runner is not None and definition is not None and definition.is_async:
                held.runner.cancel()

    # -- maintenance -----------------------------------------------------------------

    async def _follow_shards(self) -> None:
        """Re-read the shard counts of the queues served (one round trip per maintenance run)
        and, after a ``configure_queue(q, shards=K)``, claim from the new sub-queues
        (:func:`taskq.shards.selection_flow`). Their wake-ups are not subscribed until the
        worker restarts: the idle poll (``idle_poll_s``) finds their tasks meanwhile."""
        current = self.selection
        served = QueueSelection(served_queues(current), current.weights)
        try:
            fresh = await self._exec.drive(selection_flow(self.ops, served, rated_queues(self.registry)))
        except (*TRY_AGAIN, NotSupportedOnShardedQueue) as exc:
            log.warning("shard counts not re-read: %s", exc)
            return
        if fresh.queues != current.queues:
            log.info("worker %s now claims from %s (shard count changed)", self.id, ",".join(fresh.queues))
            self.selection = fresh

    async def _maintenance_loop(self) -> None:
        while not self._stopping:
            await self._sleep(self.maintenance_s * (0.75 + 0.5 * self._rng.random()))
            await self._follow_shards()
            for queue in self.selection.queues:
                try:
                    requeued, dead = await self._exec.run(self.ops.requeue_expired(queue))
                    await self._exec.run(self.ops.promote_due(queue))
                except TRY_AGAIN as exc:
                    log.warning("maintenance failed: %s", exc)
                    break
                if requeued or dead:
                    log.warning("queue %s: %d expired leases requeued, %d dead", queue, requeued, dead)
