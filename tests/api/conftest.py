"""Fixtures for the HTTP API tests: the app under uvicorn on a free port (real HTTP), and
real worker processes (``taskq worker apiapp:tq``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from apiapp import QUEUE, register
from taskq_api import Settings, create_app
from webhelpers import serve_asgi

import taskq

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOKEN = "s3cret-token"


@dataclass
class Api:
    url: str
    app: object
    tq: taskq.TaskQueue

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture
def api(redis_url: str) -> Iterator[Api]:
    tq = taskq.TaskQueue(redis_url)
    register(tq)
    app = create_app(tq, Settings(token=TOKEN, auth_reads=True, max_body_bytes=64 * 1024, event_buffer=10_000))
    with serve_asgi(app) as url:
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
