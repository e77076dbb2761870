"""Fixtures for the HTTP API tests: the app under uvicorn on a free port (real HTTP), and
real worker processes (``taskq worker apiapp:tq``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from apiapp import QUEUE, register
from taskq_api import Settings, create_app

import taskq

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOKEN = "s3cret-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Api:
    url: str
    app: object
    tq: taskq.TaskQueue

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def serve(app: object) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def api(redis_url: str) -> Iterator[Api]:
    tq = taskq.TaskQueue(redis_url)
    register(tq)
    app = create_app(tq, Settings(token=TOKEN, auth_reads=True, max_body_bytes=64 * 1024, event_buffer=10_000))
    for url in serve(app):
        yield Api(url, app, tq)
    tq.close()


@pytest.fixture
def worker(redis_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """One real worker process serving the test queue."""
    env = {**os.environ, "TASKQ_REDIS_URL": redis_url, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    cmd = [sys.executable, "-m", "taskq.cli", "worker", "apiapp:tq", "--queues", QUEUE, "--concurrency", "4"]
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    yield proc
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None
    proc.stderr.close()
