"""The WebSocket over real connections (the ``websockets`` client), with a real worker process."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from apiapp import QUEUE
from conftest import TOKEN, Api
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

import taskq

API = "/api/v1"


def ws_url(api: Api, token: str | None = TOKEN) -> str:
    return api.url.replace("http://", "ws://") + f"{API}/ws" + (f"?token={token}" if token else "")


@contextlib.contextmanager
def subscribe(api: Api, **message: Any) -> Iterator[ClientConnection]:
    with connect(ws_url(api), open_timeout=30) as ws:
        ws.send(json.dumps({"queues": [QUEUE], "hz": 4, **message}))
        assert json.loads(ws.recv(30))["type"] == "subscribed"
        yield ws


def finished(task_id: str, type_: str = "succeeded") -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "event" and m["event"]["task_id"] == task_id and m["event"]["type"] == type_


def receive_until(ws: ClientConnection, done: Any, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Messages until ``done(message)`` is true (that one included)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        message = json.loads(ws.recv(max(0.1, deadline - time.monotonic())))
        out.append(message)
        if done(message):
            return out


def submit(c: httpx.Client, n: int) -> list[str]:
    r = c.post(f"{API}/tasks/bulk", json={"tasks": [{"name": "add", "args": [i, 1]} for i in range(n)]})
    assert r.status_code == 201, r.text
    ids: list[str] = r.json()["ids"]
    return ids


def test_submit_then_events_then_result(api: Api, worker: subprocess.Popen[bytes]) -> None:
    with subscribe(api) as ws, api.client() as c:
        (task_id,) = submit(c, 1)
        messages = receive_until(
            ws,
            lambda m: m["type"] == "event" and m["event"]["task_id"] == task_id and m["event"]["type"] == "succeeded",
        )
        types = [m["event"]["type"] for m in messages if m["type"] == "event" and m["event"]["task_id"] == task_id]
        assert types == ["enqueued", "started", "succeeded"]
        assert c.get(f"{API}/tasks/{task_id}").json()["result"] == 1
        snapshot = receive_until(ws, lambda m: m["type"] == "snapshot")[-1]["snapshot"]
        assert snapshot["queues"][0]["queue"] == QUEUE


def test_resume_after_a_forced_disconnect_misses_no_event(api: Api, worker: subprocess.Popen[bytes]) -> None:
    with api.client() as c:
        with contextlib.suppress(ConnectionClosed, OSError), subscribe(api) as ws:
            first = submit(c, 5)
            seen = receive_until(ws, finished(first[2], "started"))
            cursor = [m for m in seen if m["type"] == "event"][-1]["event"]["cursor"]
            ws.socket.shutdown(socket.SHUT_RDWR)  # dropped, not a clean close
        second = submit(c, 20)
        for task_id in first + second:
            deadline = time.monotonic() + 30
            while c.get(f"{API}/tasks/{task_id}").json()["status"] != "succeeded":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with subscribe(api, since={QUEUE: cursor}) as ws2:
            resumed = receive_until(ws2, lambda m: m["type"] == "caught_up")
            third = submit(c, 3)
            pending = set(third)

            def all_done(m: dict[str, Any]) -> bool:
                if m["type"] == "event" and m["event"]["type"] == "succeeded":
                    pending.discard(m["event"]["task_id"])
                return not pending

            resumed += receive_until(ws2, all_done)
    got = [m["event"]["cursor"] for m in resumed if m["type"] == "event"]
    assert not any(m["type"] == "fell_behind" for m in resumed)
    everything = [e.cursor for e in api.tq.events([QUEUE], since=cursor, follow=False)]
    assert got == everything  # every event after the cursor, in order, once
    assert len(got) == len(set(got))
    assert {e["event"]["task_id"] for e in resumed if e["type"] == "event"} >= set(second + third)


def test_resume_from_before_the_capped_stream_says_it_fell_behind(redis_url: str) -> None:
    from taskq_api import Settings, create_app
    from webhelpers import serve_asgi

    tq = taskq.TaskQueue(redis_url, events_maxlen=10)
    from apiapp import register

    register(tq)
    tq.enqueue("add", args=[0, 0])
    (old,) = list(tq.events([QUEUE], since="0", follow=False))
    tq.enqueue_many([{"name": "add", "args": [i, i]} for i in range(200)])
    with (
        serve_asgi(create_app(tq, Settings(insecure_local=True))) as url,
        connect(url.replace("http", "ws") + f"{API}/ws", open_timeout=30) as ws,
    ):
        ws.send(json.dumps({"queues": [QUEUE], "since": {QUEUE: old.cursor}}))
        messages = receive_until(ws, lambda m: m["type"] == "caught_up")
    assert [m["type"] for m in messages[:2]] == ["subscribed", "fell_behind"]
    tq.close()


def test_the_websocket_refuses_a_missing_or_wrong_token(api: Api) -> None:
    for token in (None, "wrong"):
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(api, token), open_timeout=30)
        assert info.value.response.status_code == 403


@pytest.mark.parametrize(
    "message",
    [{"queues": ["bad queue"]}, {"queues": [QUEUE], "hz": 50}, {"queues": [QUEUE], "since": {"other": "0"}}, [1]],
)
def test_a_bad_subscribe_message_closes_with_1008(api: Api, message: Any) -> None:
    with connect(ws_url(api), open_timeout=30) as ws:
        ws.send(json.dumps(message))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(30)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


def test_one_feed_for_many_clients(api: Api) -> None:
    hub = api.app.state.hub  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(subscribe(api)) for _ in range(5)]
        for ws in clients:
            receive_until(ws, lambda m: m["type"] == "snapshot")
        assert len(hub.feeds) == 1
        (feed,) = hub.feeds.values()
        assert len(feed.subscribers) == 5


def test_a_client_that_cannot_keep_up_is_disconnected_with_a_clear_code(redis_url: str) -> None:
    from apiapp import register
    from taskq_api import Settings, create_app
    from webhelpers import serve_asgi

    tq = taskq.TaskQueue(redis_url)
    register(tq)
    app = create_app(tq, Settings(insecure_local=True, event_buffer=8, log_requests=False))
    with serve_asgi(app) as url, connect(url.replace("http", "ws") + f"{API}/ws", open_timeout=30, max_queue=1) as ws:
        ws.send(json.dumps({"queues": [QUEUE]}))
        assert json.loads(ws.recv(30))["type"] == "subscribed"
        tq.enqueue_many([{"name": "add", "args": ["x" * 1000, i]} for i in range(3000)])
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(30)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4008
    assert "since" in info.value.rcvd.reason
    tq.close()
