"""The WebSocket ``/api/v1/ws``: one session per client over the shared feeds of :mod:`taskq_api.hub`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from taskq import AsyncTaskQueue, InvalidOption, QueueKeys
from taskq_api import models as m
from taskq_api.hub import (
    CLOSE_BAD_REQUEST,
    CLOSE_TOO_SLOW,
    MAX_HZ,
    MIN_HZ,
    EventItem,
    Feed,
    Hub,
    Subscriber,
    event_item,
)
from taskq_api.settings import API, Settings

log = logging.getLogger("taskq_api.websocket")

WEBSOCKET_DOC = """Submit and inspect taskq tasks, queues, dead letters and workers.

**WebSocket** `/api/v1/ws` (token as `Authorization: Bearer` or `?token=` when reads need one).
Send first `{"queues": ["emails"], "hz": 4, "since": {"emails": "<cursor>"}}` (`queues` null:
every queue; `hz` 1..10; `since` optional: resume after those cursors). The server answers
`{"type": "subscribed"}`; with `since`, the events missed (`{"type": "fell_behind"}` first when
the capped stream no longer holds the cursor) then `{"type": "caught_up"}`; then
`{"type": "event", "event": {..., "cursor": ...}}` as they happen and
`{"type": "snapshot", "snapshot": {...}}` at the rate asked (`{"type": "unavailable"}` while
Redis is down). Send `{"hz": n}` to change the rate. Close codes: 1008 bad subscribe message
or token; 4008 the client fell too far behind on events (reconnect with `since`: nothing is lost).
"""


class Subscribe(BaseModel):
    """The first message a WebSocket client sends."""

    type: str = "subscribe"
    queues: Annotated[list[Annotated[str, Field(pattern=m.QUEUE_PATTERN)]], Field(max_length=100)] | None = None
    hz: Annotated[float, Field(ge=MIN_HZ, le=MAX_HZ)] = 2.0
    since: dict[Annotated[str, Field(pattern=m.QUEUE_PATTERN)], Annotated[str, Field(max_length=64)]] | None = None

    @model_validator(mode="after")
    def _since_subscribed(self) -> Subscribe:
        extra = set(self.since or ()) - set(self.queues or ())
        if self.queues and extra:
            raise ValueError(f"since names queues not subscribed to: {', '.join(sorted(extra))}")
        return self


def _ws_token(ws: WebSocket) -> str | None:
    header = ws.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return ws.query_params.get("token")


def add_websocket(app: FastAPI, tq: AsyncTaskQueue, hub: Hub, settings: Settings) -> None:
    @app.websocket(f"{API}/ws")
    async def websocket(ws: WebSocket) -> None:
        """Subscribe: ``{"queues": [...], "hz": 4, "since": {"queue": "<cursor>"}}``."""
        if settings.token is not None and settings.auth_reads and not settings.accepts(_ws_token(ws)):
            await ws.close(code=1008, reason="missing or wrong token")  # before accept: HTTP 403
            return
        await ws.accept()
        try:
            sub_msg = Subscribe.model_validate(await ws.receive_json())
        except (PydanticValidationError, ValueError) as exc:
            await ws.close(code=CLOSE_BAD_REQUEST, reason=f"bad subscribe message: {exc}"[:120])
            return
        except WebSocketDisconnect:
            return
        await Session(ws, tq, hub, settings, sub_msg).run()


class Session:
    """One WebSocket client: catch up from ``since``, then live events and snapshots."""

    def __init__(self, ws: WebSocket, tq: AsyncTaskQueue, hub: Hub, settings: Settings, msg: Subscribe) -> None:
        self.ws, self.tq, self.hub, self.msg = ws, tq, hub, msg
        self.sub = Subscriber(hz=msg.hz, buffer=settings.event_buffer)
        self.last: dict[str, tuple[int, int, int]] = {}
        self.feed: Feed | None = None

    def feed_hz(self) -> float:
        return self.feed.hz if self.feed is not None else self.sub.hz

    async def run(self) -> None:
        feed = self.feed = self.hub.join(self.msg.queues, self.sub)
        tasks = [
            asyncio.create_task(self._send_loop()),
            asyncio.create_task(self._receive_loop()),
            asyncio.create_task(self.sub.too_slow.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if self.sub.too_slow.is_set():
                with contextlib.suppress(Exception):
                    await self.ws.close(code=CLOSE_TOO_SLOW, reason="too slow: reconnect with since=<last cursor>")
            for t in done:
                if (
                    not t.cancelled()
                    and t.exception() is not None
                    and not isinstance(t.exception(), WebSocketDisconnect)
                ):
                    log.warning("websocket session ended: %r", t.exception())
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await self.hub.leave(feed, self.sub)

    async def _receive_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            with contextlib.suppress(Exception):
                hz = float(json.loads(message.get("text") or "{}").get("hz"))
                self.sub.hz = min(MAX_HZ, max(MIN_HZ, hz))

    async def _send_loop(self) -> None:
        await self.ws.send_text(json.dumps({"type": "subscribed", "queues": self.msg.queues, "hz": self.sub.hz}))
        if self.msg.since:
            await self._catch_up(self.msg.since)
            await self.ws.send_text(json.dumps({"type": "caught_up"}))
        loop = asyncio.get_running_loop()
        last_sent, sent_seq = -1e9, 0
        while True:
            while not self.sub.events.empty():
                await self._send_event(self.sub.events.get_nowait())
            now = loop.time()
            # A new snapshot goes out as soon as it arrives, unless that would beat the rate the
            # client asked for; the slack (a fifth of the feed's period) absorbs polling jitter.
            earliest = last_sent + 1.0 / self.sub.hz - 0.2 / self.feed_hz()
            fresh = self.sub.snapshot is not None and self.sub.snapshot_seq != sent_seq
            if fresh and now >= earliest and self.sub.snapshot is not None:
                last_sent, sent_seq = now, self.sub.snapshot_seq
                await self.ws.send_text(self.sub.snapshot)
                fresh = False
            self.sub.wake.clear()
            if self.sub.events.empty():
                timeout = max(0.001, earliest - loop.time()) if fresh else 1.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.sub.wake.wait(), timeout)

    async def _send_event(self, item: EventItem) -> None:
        if item.position <= self.last.get(item.queue, (-1, -1, -1)):
            return  # already sent during the catch-up
        self.last[item.queue] = item.position
        await self.ws.send_text(item.text)

    async def _catch_up(self, since: dict[str, str]) -> None:
        """Events after each queue's cursor, read from Redis; the feed buffers live ones meanwhile."""
        for queue, cursor in since.items():
            oldest = await self.tq.redis.xrange(QueueKeys(self.tq.prefix, queue).events, count=1)
            stream_id = cursor.partition("#")[0]
            if oldest and _older(stream_id, str(oldest[0][0])):
                await self.ws.send_text(
                    json.dumps({"type": "fell_behind", "queue": queue, "oldest": oldest[0][0], "cursor": cursor})
                )
        try:
            events = self.tq.events(list(since), since=since, follow=False)
            async with contextlib.aclosing(events):  # type: ignore[type-var]
                async for event in events:
                    await self._send_event(event_item(event))
        except InvalidOption as exc:
            await self.ws.close(code=CLOSE_BAD_REQUEST, reason=str(exc)[:120])
            raise WebSocketDisconnect(CLOSE_BAD_REQUEST) from None


def _older(stream_id: str, oldest: str) -> bool:
    """True if everything after ``stream_id`` no longer starts at the stream's oldest entry."""
    try:
        a = tuple(int(x) for x in [*stream_id.split("-"), "0"][:2])
    except ValueError:
        return False
    b = tuple(int(x) for x in oldest.split("-"))
    return a < (b[0], b[1] - 1) if b[1] > 0 else a < (b[0] - 1, 2**64 - 1)
