"""The hand-off: an idle worker gets its next task from the script that queued it.

Without it, a task that arrives in an empty queue starts two trips after its enqueue: the
enqueue script publishes a wake-up, the worker wakes and claims (a script call), and the
claim's reply starts the task. With it, the enqueue script leases the task to an idle worker
itself and sends it the claim reply: one trip, as a blocking pop wakes a worker, with the
lease written before the worker has the task.

How (the Lua is lib/common.lua, ``handoff``):

* A claim that leaves a queue empty registers the worker in the queue's ``idle`` ZSET for
  :func:`registration_ms` (claim.lua, ``register_ms``), one member per task it may be handed:
  as many as it has free slots (shared among the queues it claims from:
  :func:`registration_slots`), up to :data:`SLOTS`. Any other claim takes its registration
  back. An idle worker claims again every ``idle_poll_s``, which renews it, and once half its
  registration is used (so at low load a worker makes one claim per few tasks, not one per
  task), or all of it when it is small (a registration of 1 at concurrency 1: one claim per
  task, as before).
* The enqueue script that finds the queue empty leases its task to the freshest registered
  worker (one task per member) and publishes the claim reply on the worker's own
  channel, ``taskq:{queue}:wake:<worker id>``, which the worker subscribed before it claimed.
  What one script hands one worker goes in one message (:func:`~taskq.worker_ops.parse_handoff`),
  so the claim the worker makes once a task has started (its listener lets each start before
  it reads again) never takes a slot a task still on the way was given.
  Only when PUBLISH says a subscriber received it: a worker that is gone (or whose connection
  dropped) leases nothing, and the task goes to the next registration, else stays queued and
  the queue's wake-up goes out as before.
* The worker starts the task. A worker with no free slot releases it at once (back to the
  queue, no attempt spent, the queue woken), so ``concurrency`` is never exceeded and no task
  waits on a busy worker while another is idle. That happens only in a race: a registration
  says a slot was free when its claim ran, and a worker that is full when a claim's reply comes
  (later claims of the same round, or hand-offs that came meanwhile, took every slot) takes
  the registrations that claim made back.
* The other way round: hand-offs that come while a claim is on its way take slots the claim
  was sent for. Claimed tasks past the room left are released at once, the same way.
* At stop the worker takes its registrations back, then waits for an end marker it publishes
  to itself on each channel: whatever was handed off before arrives first and is released.

Nothing is lost: a worker killed after a task was handed to it had its lease written; the
lease runs out and the reaper queues the task again, as for a claimed task. Queues with rate
limits are never handed off (the claim script applies the limits).

``TASKQ_HANDOFF=0`` in a worker's environment turns it off for that worker: its claims
register nothing, so it wakes on the queue's channel and claims (the benchmarks' before/after).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Callable, Sequence

from taskq.executor import AsyncExecutor
from taskq.ops import ClaimedTask, Operations
from taskq.ops_base import no_result
from taskq.plan import Command, Plan
from taskq.upkeep import TRY_AGAIN
from taskq.worker_context import QueueSelection
from taskq.worker_ops import parse_handoff

log = logging.getLogger("taskq.worker")

#: Set to 0 (or false, no, off) in a worker's environment to turn the hand-off off.
ENV_SWITCH = "TASKQ_HANDOFF"
#: What a worker publishes to itself at stop: every hand-off published before it has arrived.
END_MARKER = ""
#: How long a stopping worker waits for its end markers.
LEAVE_WAIT_S = 1.0
#: The most tasks one registration takes (lib/common.lua HANDOFF_SLOTS): the members a claim
#: adds, one per free slot. More would spare a few more claims (one per SLOTS / 2 hand-offs
#: at low load) at the cost of longer member lists in every claim that registers.
SLOTS = 8


def enabled() -> bool:
    """Whether the environment leaves the hand-off on (the default)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def registration_ms(idle_poll_s: float) -> int:
    """How long a claim's registration lasts: an idle worker claims (and registers) again every
    ``idle_poll_s``, so two of those and a second, a margin for a slow round trip. A worker that
    stops without taking it back (killed) holds it no longer than that, and gets nothing meanwhile
    once its connection is gone (PUBLISH counts no subscriber)."""
    return int((2 * idle_poll_s + 1) * 1000)


def registration_slots(free: int, queues: int) -> int:
    """How many tasks a claim's registration may take (1..:data:`SLOTS`): the worker's free
    slots shared among the ``queues`` it claims from, so that registrations on several queues
    do not promise one slot many times over (a task handed to a full worker is given back)."""
    return max(1, min(SLOTS, free // max(1, queues)))


def members(lease_ms: int, worker_id: str) -> list[str]:
    """The names of a worker's registration members on a queue, first to last (the first is
    taken last: ZPOPMAX takes the greatest of equal scores)."""
    first = f"{lease_ms} {worker_id}"
    return [first, *(f"{first} {n}" for n in range(2, SLOTS + 1))]


def claim_again(registered: int, left: int) -> bool:
    """Whether a worker handed a task should claim again (renewing its registration): once
    ``left`` of the ``registered`` members is half or less. A claim the worker need not make
    costs nothing; one it skips wrongly costs a wake-up: a task that finds no member is
    queued and the queue's wake-up sent, as without the hand-off."""
    return left <= registered // 2


def channel(ops: Operations, queue: str, worker_id: str) -> str:
    """The channel a worker receives its hand-offs of ``queue`` on (the wake channel's name and
    the worker's id: the same hash tag, so on a Cluster it stays on the queue's shard)."""
    return f"{ops.queue_keys(queue).wake}:{worker_id}"


def unregister_commands(ops: Operations, queues: Sequence[str], worker_id: str, lease_ms: int) -> list[Command]:
    """Take a worker's registrations on ``queues`` back (the claim script made them)."""
    return [Command(("ZREM", ops.queue_keys(q).idle, *members(lease_ms, worker_id))) for q in queues]


def leave_plan(
    ops: Operations, queues: Sequence[str], subscribed: Sequence[str], worker_id: str, lease_ms: int
) -> Plan[None]:
    """Take the worker's registrations on ``queues`` back, then publish its end marker on the
    channel of each queue in ``subscribed``."""
    publish = "SPUBLISH" if ops.cluster else "PUBLISH"
    ends = [Command((publish, channel(ops, q, worker_id), END_MARKER)) for q in subscribed]
    return Plan([*unregister_commands(ops, queues, worker_id, lease_ms), *ends], no_result)


class HandOff:
    """Receiving hand-offs (a mixin of :class:`~taskq.worker.Worker`)."""

    id: str
    ops: Operations
    concurrency: int
    lease_ms: int
    selection: QueueSelection
    _running: set[asyncio.Task[None]]
    _stopping: bool
    _work_event: asyncio.Event
    _exec: AsyncExecutor
    _start: Callable[[ClaimedTask], None]

    def _handoff_init(self, idle_poll_s: float) -> None:
        #: The claim's registration (ms), 0 with the hand-off off.
        self._handoff_ms = registration_ms(idle_poll_s) if enabled() else 0
        #: The queues whose hand-off channel the worker subscribed at start (a sub-queue a
        #: shard change adds later is not: a hand-off there finds no subscriber, and is not made).
        self._subscribed: list[str] = []
        self._ended: set[str] = set()
        self._all_ended = asyncio.Event()
        self._giving_back: set[asyncio.Task[None]] = set()
        #: Per queue: the members the last claim registered, and those not yet handed a task.
        self._registered: dict[str, int] = {}
        self._unused: dict[str, int] = {}

    def _handoff_routes(self) -> dict[str, Callable[[str], None]]:
        """The channels to subscribe (:class:`~taskq.wake.WakeListener`), each with its receiver."""
        if not self._handoff_ms:
            return {}
        self._subscribed = list(self.selection.queues)
        return {channel(self.ops, q, self.id): functools.partial(self._handed, q) for q in self._subscribed}

    def _handed(self, queue: str, data: str) -> None:
        if data == END_MARKER:
            self._ended.add(queue)
            if self._ended.issuperset(self._subscribed):
                self._all_ended.set()
            return
        try:
            tasks = parse_handoff(queue, data)
        except (ValueError, TypeError, IndexError) as exc:  # not ours to read: the leases run out
            log.error("unreadable hand-off on %s ignored (%s): %.200r", queue, exc, data)
            return
        for task in tasks:
            if self._stopping or len(self._running) >= self.concurrency:
                self._give_back_later(task)
            else:
                self._start(task)
        left = self._unused[queue] = self._unused.get(queue, 0) - len(tasks)
        if claim_again(self._registered.get(queue, 0), left):
            self._work_event.set()  # the claim loop claims again, and so registers again

    def _handoff_registered(self, queue: str, members: int) -> None:
        """A claim of ``queue`` registered ``members`` (with the hand-off on)."""
        self._registered[queue] = self._unused[queue] = members if self._handoff_ms else 0

    def _handoff_fit(self, claimed: list[ClaimedTask]) -> list[ClaimedTask]:
        """The claimed tasks there is room for. Hand-offs that came while the claim was on its
        way took slots it was sent for: the tasks past the room left are given back."""
        room = max(0, self.concurrency - len(self._running))
        for task in claimed[room:]:
            self._give_back_later(task)
        return claimed[:room]

    def _give_back_later(self, task: ClaimedTask) -> None:
        give_back = asyncio.create_task(self._give_back(task), name=f"taskq-give-back:{task.id}")
        self._giving_back.add(give_back)
        give_back.add_done_callback(self._giving_back.discard)

    async def _give_back(self, task: ClaimedTask) -> None:
        try:
            await self._exec.run(self.ops.release(task.queue, [(task.id, task.token)]))
            log.debug("task %s came to a full or stopping worker: released", task.id)
        except TRY_AGAIN as exc:
            log.warning("could not release task %s that came while full (its lease will run out): %s", task.id, exc)

    async def _handoff_unregister(self, queues: Sequence[str]) -> None:
        for queue in queues:
            self._handoff_registered(queue, 0)
        commands = unregister_commands(self.ops, queues, self.id, self.lease_ms)
        with contextlib.suppress(*TRY_AGAIN):  # a registration lapses by itself
            await self._exec.run(Plan(commands, no_result))

    async def _handoff_leave(self) -> None:
        """At stop: no more hand-offs, and every one sent before has arrived and been released
        (up to :data:`LEAVE_WAIT_S`; one that comes later waits out its lease)."""
        if not self._handoff_ms:
            return
        try:
            async with asyncio.timeout(LEAVE_WAIT_S):
                queues = self.selection.queues
                await self._exec.run(leave_plan(self.ops, queues, self._subscribed, self.id, self.lease_ms))
                await self._all_ended.wait()
        except (*TRY_AGAIN, TimeoutError) as exc:
            log.warning("hand-offs not closed cleanly at stop (any still on the way wait out their lease): %r", exc)
        await asyncio.gather(*self._giving_back, return_exceptions=True)
