"""The HTTP API's schedule and rate-limit routes (api/taskq_api/routes_schedules.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from taskq_api import Settings, create_app
from webhelpers import serve_asgi

import taskq

TOKEN = "t0ken"


@pytest.fixture
def client(redis_url: str) -> Iterator[httpx.Client]:
    """The API under uvicorn on a free port (real HTTP), as tests/api/conftest.py serves it."""
    tq = taskq.TaskQueue(redis_url)

    @tq.task(name="nightly", queue="jobs")
    def nightly(n: int) -> int:
        return n

    with serve_asgi(create_app(tq, Settings(token=TOKEN))) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c
    tq.close()


def test_schedule_routes(client: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"task": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "args": [3], "misfire": "skip"}
    assert client.put("/api/v1/schedules/nightly", json=body).status_code == 401
    made = client.put("/api/v1/schedules/nightly", json=body, headers=auth)
    assert made.status_code == 200, made.text
    assert made.json()["queue"] == "jobs" and made.json()["next_fire_ms"] > 0
    assert [s["name"] for s in client.get("/api/v1/schedules").json()] == ["nightly"]
    assert client.post("/api/v1/schedules/nightly/pause", headers=auth).json()["paused"] is True
    assert client.post("/api/v1/schedules/nightly/resume", headers=auth).json()["paused"] is False
    bad = client.put("/api/v1/schedules/x", json={**body, "cron": "nope"}, headers=auth)
    assert bad.status_code == 422
    unknown = client.put("/api/v1/schedules/x", json={**body, "task": "other"}, headers=auth)
    assert unknown.status_code == 422
    assert client.delete("/api/v1/schedules/nightly", headers=auth).status_code == 204
    assert client.delete("/api/v1/schedules/nightly", headers=auth).status_code == 404
    assert client.get("/api/v1/schedules").json() == []


def test_rate_limit_route(client: httpx.Client, redis_url: str) -> None:
    with taskq.TaskQueue(redis_url) as tq:
        tq.configure_queue("jobs", rate="5/s")
    (limiter,) = client.get("/api/v1/queues/jobs/rate-limits").json()
    assert limiter["limiter"] == "queue" and limiter["count"] == 5 and limiter["algorithm"] == "gcra"
