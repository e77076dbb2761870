"""WebSocket fan-out: one poller per queue set, shared by every client subscribed to it.

A :class:`Feed` reads a queue set's telemetry snapshot (at the fastest rate any of its
clients asked for) and follows its events streams; it serialises each snapshot and event to
JSON once and offers the text to every :class:`Subscriber`. So Redis work grows with the
number of distinct queue sets, not with clients.

Each subscriber holds a bounded buffer of events and only the latest snapshot: a slow client
skips snapshots, and a client whose event buffer fills is disconnected (close code
``CLOSE_TOO_SLOW``) and may resume from the last cursor it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from taskq import AsyncTaskQueue, Event

log = logging.getLogger("taskq_api.hub")

CLOSE_TOO_SLOW = 4008
"""Close code: the client did not read events fast enough; reconnect with ``since``."""
CLOSE_BAD_REQUEST = 1008
CLOSE_UNAVAILABLE = 1013
MIN_HZ, MAX_HZ = 1.0, 10.0
SNAPSHOT_WINDOWS_S = (10, 60)
RETRY_PAUSE_S = 0.5
YIELD_EVERY = 256
STOP_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class EventItem:
    """One event ready to send: its position in its queue's stream and its JSON text."""

    queue: str
    position: tuple[int, int, int]  # (stream ms, stream seq, index in entry)
    text: str


def position_of(stream_id: str, index: int) -> tuple[int, int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0), index


def event_item(event: Event) -> EventItem:
    text = json.dumps({"type": "event", "event": event.to_dict()}, separators=(",", ":"))
    return EventItem(event.queue, position_of(event.stream_id, event.index), text)


@dataclass(eq=False)
class Subscriber:
    """One WebSocket client's side of a feed: a bounded event buffer, the latest snapshot."""

    hz: float
    buffer: int
    events: asyncio.Queue[EventItem] = field(init=False)
    snapshot: str | None = None
    snapshot_seq: int = 0
    too_slow: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.events = asyncio.Queue(self.buffer)

    def offer_event(self, item: EventItem) -> None:
        try:
            self.events.put_nowait(item)
        except asyncio.QueueFull:
            self.too_slow.set()  # the session closes the socket; memory stays bounded
        self.wake.set()

    def offer_snapshot(self, text: str, seq: int) -> None:
        self.snapshot, self.snapshot_seq = text, seq  # older ones are skipped
        self.wake.set()


class Feed:
    """The pollers of one queue set (None: every queue)."""

    def __init__(self, tq: AsyncTaskQueue, queues: tuple[str, ...] | None) -> None:
        self.tq = tq
        self.queues = queues
        self.subscribers: set[Subscriber] = set()
        self.snapshots_taken = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._rate_changed = asyncio.Event()
        self.error: str | None = None

    @property
    def hz(self) -> float:
        return max((s.hz for s in self.subscribers), default=MIN_HZ)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._poll_snapshots(), name="taskq-api-snapshots"),
            asyncio.create_task(self._follow_events(), name="taskq-api-events"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # A cancelled blocking read may take a while to give up its connection (seen: ~30 s
        # after a large burst); the pollers are cancelled, so the client need not wait for it.
        await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)

    def rate_changed(self) -> None:
        self._rate_changed.set()

    async def _poll_snapshots(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                snap = await self.tq.snapshot(list(self.queues) if self.queues else None, windows_s=SNAPSHOT_WINDOWS_S)
            except Exception as exc:  # noqa: BLE001 - Redis down: tell clients, keep trying
                self.error = f"{type(exc).__name__}: {exc}"
                text = json.dumps({"type": "unavailable", "detail": self.error})
            else:
                self.error = None
                text = json.dumps({"type": "snapshot", "snapshot": snap.to_dict()}, separators=(",", ":"))
            self.snapshots_taken += 1
            for sub in list(self.subscribers):
                sub.offer_snapshot(text, self.snapshots_taken)
            self._rate_changed.clear()
            pause = max(0.0, 1.0 / self.hz - (loop.time() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rate_changed.wait(), pause)

    async def _follow_events(self) -> None:
        since: dict[str, str] | None = None  # "now" at the start; after an error, where we were
        sent = 0
        while True:
            try:
                names = list(self.queues) if self.queues else None
                async for event in self.tq.events(names, since=since, block_s=1.0):
                    item = event_item(event)
                    since = {**(since if isinstance(since, dict) else {}), event.queue: event.cursor}
                    for sub in list(self.subscribers):
                        sub.offer_event(item)
                    sent += 1
                    if sent % YIELD_EVERY == 0:  # let the clients' senders drain before the next burst
                        await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: resume where we were once it is back
                log.warning("event feed paused: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(RETRY_PAUSE_S)


class Hub:
    """The feeds of one server, keyed by queue set; a feed stops with its last subscriber."""

    def __init__(self, tq: AsyncTaskQueue) -> None:
        self.tq = tq
        self.feeds: dict[tuple[str, ...] | None, Feed] = {}

    def join(self, queues: Iterable[str] | None, sub: Subscriber) -> Feed:
        key = tuple(sorted(set(queues))) if queues else None
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed(self.tq, key)
            feed.subscribers.add(sub)
            feed.start()
        else:
            feed.subscribers.add(sub)
            feed.rate_changed()
        return feed

    async def leave(self, feed: Feed, sub: Subscriber) -> None:
        feed.subscribers.discard(sub)
        if not feed.subscribers and self.feeds.get(feed.queues) is feed:
            del self.feeds[feed.queues]
            await feed.stop()

    async def close(self) -> None:
        feeds, self.feeds = list(self.feeds.values()), {}
        for feed in feeds:
            await feed.stop()
