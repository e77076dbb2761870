"""The worker's wake-ups: a subscription to the wake channels of the queues it serves.

The scripts publish to a queue's channel ``taskq:{queue}:wake`` when work arrives in an empty
queue (lua/lib/common.lua, ``wake_publish``). On one server that is plain pub/sub
(``SUBSCRIBE``); on a Redis Cluster it is sharded pub/sub (``SSUBSCRIBE``, Redis 7+): the
channel carries the queue's hash tag, so a message stays on the shard that owns the queue, and
redis-py's cluster pub/sub holds one connection per shard, following a channel to its new
owner after a slot migration or a failover (``MOVED``).

A wake-up is only a hint: a worker also polls (its idle poll) and claims again after any
error here, so a message lost while the subscription is re-made costs latency, never a task.
The same subscription carries the worker's hand-offs (:mod:`taskq.handoff`), on channels of its
own, each routed to its receiver with the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from taskq.connection import is_cluster

log = logging.getLogger("taskq.worker")

#: How long :meth:`WakeListener.start` waits for the server to confirm the subscriptions.
CONFIRM_S = 10.0
#: Pause before re-subscribing after the subscription failed.
RESUBSCRIBE_S = 0.5


class WakeListener:
    """Subscribes ``client`` (a ``redis.asyncio`` client, one server or a cluster) to
    ``channels`` and calls ``on_wake`` for every message, and once after each reconnection."""

    def __init__(
        self,
        client: Any,
        channels: Sequence[str],
        on_wake: Callable[[], None],
        routes: dict[str, Callable[[str], None]] | None = None,
    ) -> None:
        self.client = client
        self.channels = list(channels)
        self.on_wake = on_wake
        #: Channels whose messages go to their own receiver, with the message (taskq.handoff).
        self.routes = routes or {}
        self.sharded = is_cluster(client)
        self.pubsub: Any = None

    async def start(self) -> None:
        """Subscribe, and wait (up to :data:`CONFIRM_S`) until every channel is confirmed."""
        self.pubsub = self.client.pubsub()
        channels = [*self.channels, *self.routes]
        if self.sharded:
            await self.pubsub.ssubscribe(*channels)
        else:
            await self.pubsub.subscribe(*channels)
        kind = "ssubscribe" if self.sharded else "subscribe"
        confirmed = 0
        deadline = time.monotonic() + CONFIRM_S
        while confirmed < len(channels) and time.monotonic() < deadline:
            message = await self._next(ignore_subscribe_messages=False)
            if message and message["type"] == kind:
                confirmed += 1

    async def _next(self, *, ignore_subscribe_messages: bool) -> dict[str, Any] | None:
        if self.sharded:
            message = await self.pubsub.get_sharded_message(
                ignore_subscribe_messages=ignore_subscribe_messages, timeout=1.0
            )
        else:
            message = await self.pubsub.get_message(ignore_subscribe_messages=ignore_subscribe_messages, timeout=1.0)
        return message  # type: ignore[no-any-return]

    async def run(self) -> None:
        """Listen until cancelled; a lost subscription is made again (after a short pause)."""
        while True:
            try:
                message = await self._next(ignore_subscribe_messages=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - resubscribe below; the idle poll covers the gap
                log.warning("wake-up channel lost (%s); resubscribing", exc)
                await asyncio.sleep(RESUBSCRIBE_S)
                await self.aclose()
                with contextlib.suppress(Exception):
                    await self.start()
                self.on_wake()
                continue
            if message is None:
                continue
            receive = self.routes.get(message["channel"])
            if receive is not None:
                receive(message["data"])
            else:
                self.on_wake()
            # Let what the message started (a handed-off task, a claim) run before the next
            # read is set up: redis-py's get_message costs tens of µs, which a task started by
            # the hand-off would otherwise wait out (taskq.handoff).
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.aclose()
            self.pubsub = None
