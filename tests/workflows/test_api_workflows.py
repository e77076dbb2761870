"""The workflow routes of the HTTP API: GET /api/v1/workflows/{id} (every node, progress
included) and POST .../cancel, with the real app on the test server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from helpers import claim, complete
from taskq_api import Settings, create_app
from webhelpers import serve_asgi
from websockets.sync.client import connect

import taskq

TOKEN = "wf-token"


@pytest.fixture
def client(tq: taskq.TaskQueue) -> Iterator[httpx.Client]:
    """The app under uvicorn on a free port (real HTTP), as tests/api does."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        serve_asgi(create_app(tq, Settings(token=TOKEN))) as url,
        httpx.Client(base_url=url, headers=headers, timeout=30) as c,
    ):
        yield c


def test_get_and_cancel_a_workflow(tq: taskq.TaskQueue, client: httpx.Client) -> None:
    @tq.task(name="step")
    def step(*args: int) -> int:
        return sum(args)

    wf = tq.submit(taskq.chain(step.s(1), step.s(2), step.s(3)))
    complete(tq, claim(tq)[0], 1)
    body = client.get(f"/api/v1/workflows/{wf.id}").json()
    assert body["state"] == "running" and body["total"] == 3
    assert [n["status"] for n in body["nodes"]] == ["succeeded", "queued", "waiting"]
    assert body["nodes"][2]["parents"] == [wf.nodes[1]] and body["nodes"][2]["feed"] == "prev"
    assert body["nodes"][1]["task"]["args"] == [1, 2] and body["nodes"][1]["task"]["workflow_id"] == wf.id
    assert client.get(f"/api/v1/tasks/{wf.nodes[2]}").json()["status"] == "waiting"

    assert client.post(f"/api/v1/workflows/{wf.id}/cancel").json() == {"cancelled": 2, "cancelling": 0}
    assert client.get(f"/api/v1/workflows/{wf.id}").json()["state"] == "cancelled"
    for reply in (client.get("/api/v1/workflows/nope"), client.post("/api/v1/workflows/nope/cancel")):
        assert reply.status_code == 404 and reply.json()["error"] == "WorkflowNotFound"
    assert client.post(f"/api/v1/workflows/{wf.id}/cancel", headers={"Authorization": ""}).status_code == 401


def test_progress_reaches_websocket_clients_as_events(tq: taskq.TaskQueue, client: httpx.Client, workers: list) -> None:
    release = threading.Event()

    @tq.task(name="slow")
    def slow() -> str:
        ctx = taskq.current_task()
        assert ctx is not None
        ctx.progress(1, 4, "a quarter")
        release.wait(10)
        return "done"

    ws_url = str(client.base_url).replace("http://", "ws://") + f"/api/v1/ws?token={TOKEN}"
    with connect(ws_url, open_timeout=30) as ws:
        ws.send(json.dumps({"queues": ["default"], "hz": 4}))
        assert json.loads(ws.recv(30))["type"] == "subscribed"
        workers.append(tq.start_worker(queues=["default"]))
        handle = slow.enqueue()
        deadline = time.monotonic() + 30
        while True:
            message = json.loads(ws.recv(max(0.1, deadline - time.monotonic())))
            event = message.get("event") or {}
            if message["type"] == "event" and event.get("task_id") == handle.id and event["type"] == "progress":
                break
        assert event["progress"] == {"done": 1, "total": 4, "message": "a quarter"}
        release.set()
        assert handle.result(timeout_s=10) == "done"
