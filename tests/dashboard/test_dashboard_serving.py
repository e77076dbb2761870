"""How `taskq serve` serves the dashboard: cache headers, client routes, the API untouched,
one line when the dashboard is not built; and the two routes the dashboard added (auth, a
task's events)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from taskq_api import Settings, create_app, static
from taskq_api.cli import _say_dashboard
from webhelpers import serve_asgi

import taskq

INLINE = "document.documentElement.classList.add('x');"
TOKEN = "t0ken"


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in build: index.html with an inline script, one hashed asset."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(
        f'<!doctype html><html><head><script>{INLINE}</script></head><body><div id="root"></div>'
        '<script type="module" src="/assets/index-abc123.js"></script></body></html>'
    )
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log('hi')")
    monkeypatch.setattr(static, "DIST", tmp_path)
    return tmp_path


@pytest.fixture
def not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(static, "DIST", tmp_path / "nothing-here")
    return tmp_path


def running(app: object) -> Iterator[httpx.Client]:
    """The app under uvicorn on a free port (real HTTP), and a client for it."""
    with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def client(tq: taskq.TaskQueue, **settings: object) -> Iterator[httpx.Client]:
    yield from running(create_app(tq, Settings(token=TOKEN, **settings)))  # type: ignore[arg-type]


@pytest.fixture
def http(tq: taskq.TaskQueue, dist: Path) -> Iterator[httpx.Client]:
    yield from client(tq)


def test_index_is_never_cached_and_hashed_assets_are_immutable(http: httpx.Client) -> None:
    index = http.get("/")
    assert index.status_code == 200 and '<div id="root">' in index.text
    assert index.headers["cache-control"] == "no-cache"
    asset = http.get("/assets/index-abc123.js")
    assert asset.status_code == 200 and asset.text == "console.log('hi')"
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert http.get("/assets/index-missing.js").status_code == 404


def test_csp_allows_only_the_pages_own_inline_script(http: httpx.Client) -> None:
    csp = http.get("/").headers["content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(INLINE.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    assert "script-src 'self' 'sha256-" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("path", ["/queues/emails", "/tasks/emails:0193abc", "/workers", "/dead/emails"])
def test_client_routes_get_the_page(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 200 and '<div id="root">' in response.text
    assert response.headers["cache-control"] == "no-cache"


def test_the_api_keeps_its_own_404s_and_routes(http: httpx.Client) -> None:
    missing = http.get("/api/v1/no-such-route")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
    unknown_task = http.get("/api/v1/tasks/default:nope")
    assert unknown_task.status_code == 404 and unknown_task.json()["error"] == "TaskNotFound"
    assert http.get("/healthz").json() == {"status": "ok", "detail": None}
    assert http.get("/openapi.json").status_code == 200
    assert http.post("/queues/emails").status_code in (404, 405)  # only GETs fall back to the page
    assert http.get("/favicon.ico").status_code == 404  # a file name is not a client route


def test_without_a_build_the_api_is_served_and_slash_says_how_to_build(
    tq: taskq.TaskQueue, not_built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for http in client(tq):
        root = http.get("/")
        assert root.status_code == 404
        assert "scripts/build_dashboard.sh" in root.text and root.text.count("\n") == 1
        assert http.get("/healthz").status_code == 200
        assert http.get("/queues/emails").status_code == 404  # no page to fall back to
    _say_dashboard()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bash scripts/build_dashboard.sh" in err


def test_built_dashboard_is_not_announced(dist: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _say_dashboard()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("token", "auth_reads", "expected"),
    [
        (TOKEN, False, {"token_required": True, "reads_need_token": False}),
        (TOKEN, True, {"token_required": True, "reads_need_token": True}),
        (None, False, {"token_required": False, "reads_need_token": False}),
    ],
)
def test_auth_route_tells_what_the_server_needs(
    tq: taskq.TaskQueue, dist: Path, token: str | None, auth_reads: bool, expected: dict[str, bool]
) -> None:
    settings = Settings(token=token, insecure_local=token is None, auth_reads=auth_reads)
    for http in running(create_app(tq, settings)):
        assert http.get("/api/v1/auth").json() == expected  # needs no token itself


def test_task_events_are_the_tasks_own_timeline(
    tq: taskq.TaskQueue, dist: Path, workers: list[taskq.BackgroundWorker]
) -> None:
    @tq.task(queue="tl")
    def add(a: int, b: int) -> int:
        return a + b

    other = add.enqueue(0, 0)
    handle = add.enqueue(1, 2)
    worker = tq.start_worker(queues=["tl"], concurrency=1)
    workers.append(worker)
    assert handle.result(timeout_s=30) == 3
    other.result(timeout_s=30)
    for http in client(tq, auth_reads=True):
        assert http.get(f"/api/v1/tasks/{handle.id}/events").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        events = http.get(f"/api/v1/tasks/{handle.id}/events", headers=auth).json()
        assert [e["type"] for e in events] == ["enqueued", "started", "succeeded"]
        assert {e["task_id"] for e in events} == {handle.id}
        assert events[1]["attempt"] == 1 and events[1]["worker"] == tq.get(handle.id).worker
        assert [e["type"] for e in http.get(f"/api/v1/tasks/{handle.id}/events?limit=1", headers=auth).json()] == [
            "succeeded"
        ]
        assert http.get("/api/v1/tasks/tl:nope/events", headers=auth).status_code == 404
