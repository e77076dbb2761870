"""The workflow routes of the HTTP API: GET /api/v1/workflows/{id} (every node, progress
included) and POST .../cancel, with the real app on the test server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from helpers import claim, complete
from taskq_api import Settings, create_app

import taskq

TOKEN = "wf-token"


@pytest.fixture
def client(tq: taskq.TaskQueue) -> Iterator[httpx.Client]:
    """The app under uvicorn on a free port (real HTTP), as tests/api does."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(tq, Settings(token=TOKEN)), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as c:
        yield c
    server.should_exit = True
    thread.join(30)


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
    assert client.get("/api/v1/workflows/nope").status_code == 404
    assert client.post("/api/v1/workflows/nope/cancel").status_code == 404
    assert client.post(f"/api/v1/workflows/{wf.id}/cancel", headers={"Authorization": ""}).status_code == 401
