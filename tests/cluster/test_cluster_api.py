"""The HTTP API and the CLI through a ``redis+cluster://`` URL, and a cluster nobody answers on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from taskq_api import Settings, create_app
from webhelpers import serve_asgi

import taskq
from taskq.server import free_port

TOKEN = "cluster-token"


def test_api_on_a_cluster(cluster_url: str) -> None:
    with taskq.TaskQueue(cluster_url) as tq:

        @tq.task(name="hello", queue="greetings")
        def hello(who: str) -> str:
            return f"hello {who}"

        app = create_app(tq, Settings(token=TOKEN))
        with serve_asgi(app) as url, httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            created = http.post("/api/v1/tasks", json={"name": "hello", "args": ["you"]})
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]
            assert http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "queued"
            assert [q["queue"] for q in http.get("/api/v1/queues").json()] == ["greetings"]
            assert http.get("/readyz").status_code == 200
            metrics = http.get("/metrics")
            assert metrics.status_code == 200 and 'queue="greetings"' in metrics.text
        worker = tq.start_worker(queues=["greetings"])
        try:
            assert tq.handle(task_id).result(timeout_s=30) == "hello you"
        finally:
            worker.stop(grace_s=0)


def test_an_unreachable_cluster_is_server_unavailable() -> None:
    url = f"redis+cluster://u:secret@127.0.0.1:{free_port()}"
    with pytest.raises(taskq.ServerUnavailable, match="cannot reach") as info:
        taskq.TaskQueue(url)
    assert "secret" not in str(info.value)

    async def enqueue() -> None:
        async with taskq.AsyncTaskQueue(url) as aq:
            await aq.enqueue("t", force=True)

    with pytest.raises(taskq.ServerUnavailable) as info:
        asyncio.run(enqueue())
    assert "secret" not in str(info.value)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "taskq"), "--url", url, "stats"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "secret" not in done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and "cannot reach" in line
