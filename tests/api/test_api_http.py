"""The HTTP API over real HTTP (uvicorn on a free port), against the real redis-server, with
real worker processes."""

from __future__ import annotations

import ast
import json
import subprocess
import time
from typing import Any

import httpx
import pytest
from apiapp import QUEUE
from conftest import REPO, TOKEN, Api
from fastapi.routing import APIRoute
from helpers import wait_until
from taskq_api import Settings, create_app

API = "/api/v1"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_PATHS = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/api/v1/auth"}


def wait_for_task(client: httpx.Client, task_id: str, status: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = client.get(f"{API}/tasks/{task_id}").json()
        if body["status"] == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} is {body['status']}, not {status}, after {timeout_s}s")
        time.sleep(0.05)


def test_submit_then_result_from_a_worker_process(api: Api, worker: subprocess.Popen[bytes]) -> None:
    with api.client() as c:
        r = c.post(f"{API}/tasks", json={"name": "add", "args": [2, 3], "priority": 7}, headers={"X-Request-ID": "r-1"})
        assert r.status_code == 201, r.text
        assert r.headers["x-request-id"] == "r-1" and r.json()["request_id"] == "r-1"
        body = wait_for_task(c, r.json()["id"], "succeeded")
        assert body["result"] == 5 and body["attempts"] == 1 and body["priority"] == 7 and body["worker"]

        r = c.post(f"{API}/tasks", json={"name": "boom", "args": ["bad"]})
        dead = wait_for_task(c, r.json()["id"], "dead")
        assert dead["error_type"] == "ValueError" and "bad" in dead["traceback"]
        (summary,) = c.get(f"{API}/queues/{QUEUE}/dead").json()
        assert summary["id"] == dead["id"] and summary["error"] == "bad"
        assert c.get(f"{API}/queues/{QUEUE}/dead/{dead['id']}").json()["traceback"] == dead["traceback"]
        assert c.post(f"{API}/queues/{QUEUE}/dead/redrive", json={"error_type": "ValueError"}).json() == {"count": 1}
        wait_for_task(c, dead["id"], "dead")
        assert c.post(f"{API}/queues/{QUEUE}/dead/purge", json={"all": True}).json() == {"count": 1}

        workers = c.get(f"{API}/workers").json()
        assert len(workers) == 1 and workers[0]["queues"] == [QUEUE]
        queue = c.get(f"{API}/queues/{QUEUE}").json()
        assert queue["queue"] == QUEUE and queue["counters"]["succeeded"] >= 1
        assert [q["queue"] for q in c.get(f"{API}/queues").json()] == [QUEUE]
        assert "taskq_" in c.get("/metrics").text


def test_the_request_id_travels_into_the_task(api: Api, worker: subprocess.Popen[bytes]) -> None:
    with api.client() as c:
        r = c.post(f"{API}/tasks", json={"name": "request_meta"}, headers={"X-Request-ID": "trace-meta-7"})
        assert r.status_code == 201, r.text
        body = wait_for_task(c, r.json()["id"], "succeeded")
        assert body["result"] == {"request_id": "trace-meta-7"} and body["meta"] == {"request_id": "trace-meta-7"}
        r = c.post(f"{API}/tasks/bulk", json={"tasks": [{"name": "request_meta"}] * 2}, headers={"X-Request-ID": "b-2"})
        assert r.status_code == 201, r.text
        assert [wait_for_task(c, i, "succeeded")["result"] for i in r.json()["ids"]] == [{"request_id": "b-2"}] * 2


def test_bulk_submit_and_cancel(api: Api) -> None:
    with api.client() as c:
        r = c.post(f"{API}/tasks/bulk", json={"tasks": [{"name": "add", "args": [i, i]} for i in range(250)]})
        assert r.status_code == 201, r.text
        ids = r.json()["ids"]
        assert len(ids) == 250 and len(set(ids)) == 250
        assert c.get(f"{API}/queues/{QUEUE}").json()["queued"] == 250
        assert c.post(f"{API}/tasks/{ids[0]}/cancel").json() == {"id": ids[0], "outcome": "cancelled"}
        assert c.get(f"{API}/tasks/{ids[0]}").json()["status"] == "cancelled"
        assert c.post(f"{API}/tasks/{ids[0]}/cancel").status_code == 409


def test_configure_queue(api: Api) -> None:
    with api.client() as c:
        r = c.put(f"{API}/queues/{QUEUE}/config", json={"aging_s": 60, "default_priority": 3})
        assert r.status_code == 200, r.text
        q = c.get(f"{API}/queues/{QUEUE}").json()
        assert q["aging_s"] == 60 and q["default_priority"] == 3
        assert c.put(f"{API}/queues/{QUEUE}/config", json={"default_priority": 0}).status_code == 422


def test_a_sharded_queue_is_configured_and_shown_as_one(api: Api) -> None:
    with api.client() as c:
        r = c.put(f"{API}/queues/{QUEUE}/config", json={"shards": 3})
        assert r.status_code == 200 and r.json()["shards"] == 3, r.text
        ids = c.post(f"{API}/tasks/bulk", json={"tasks": [{"name": "add", "args": [i, 0]} for i in range(9)]}).json()
        assert len({i.partition(":")[0] for i in ids["ids"]}) == 3  # spread over three sub-queues
        queue = c.get(f"{API}/queues/{QUEUE}").json()  # the dashboard's snapshot of the queue
        assert (queue["queue"], queue["queued"], queue["shards"], queue["counters"]["enqueued"]) == (QUEUE, 9, 3, 9)
        assert [(q["queue"], q["queued"]) for q in c.get(f"{API}/queues").json()] == [(QUEUE, 9)]
        page = c.get(f"{API}/queues/{QUEUE}/tasks", params={"state": "queued", "limit": 4}).json()
        assert len(page["tasks"]) == 4 and page["next_cursor"]
        assert "~" not in c.get("/metrics").text
        busy = c.put(f"{API}/queues/{QUEUE}/config", json={"shards": 2})
        assert (busy.status_code, busy.json()["error"]) == (409, "ShardsBusy"), busy.text
        for bad in (0, 65, "3", 2.5):
            r = c.put(f"{API}/queues/{QUEUE}/config", json={"shards": bad})
            assert r.status_code == 422 and any("shards" in e["loc"] for e in r.json()["detail"]), (bad, r.text)
        assert c.put(f"{API}/queues/{QUEUE}/config", json={"shards": 0}).json()["error"] == "InvalidShards"
        assert c.get(f"{API}/queues/{QUEUE}").json()["shards"] == 3  # nothing written


def test_registered_tasks_have_parameter_schemas(api: Api) -> None:
    with api.client() as c:
        tasks = {t["name"]: t for t in c.get(f"{API}/registered-tasks").json()}
    assert set(tasks) == {"add", "boom", "request_meta"}
    assert tasks["add"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert tasks["add"]["parameters"]["required"] == ["a", "b"] and tasks["add"]["queue"] == QUEUE


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "add", "args": [1, 2], "priority": 11}, "priority"),
        ({"name": "add", "args": [1, 2], "priority": 0}, "priority"),
        ({"name": "add", "args": [1, 2], "priority": 5.5}, "priority"),
        ({"name": "add", "args": [1, 2], "priority": "5"}, "priority"),
        ({"name": "add", "args": [1, 2], "delay_s": -1}, "delay_s"),
        ({"name": "add", "args": [1, 2], "queue": "bad queue"}, "queue"),
        ({"name": "add", "args": [1, 2], "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_422_with_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    with api.client() as c:
        r = c.post(f"{API}/tasks", json=body)
        assert r.status_code == 422, r.text
        assert any(field in err["loc"] for err in r.json()["detail"])
        assert c.get(f"{API}/queues/{QUEUE}").json()["queued"] == 0


def test_unknown_name_lists_valid_names_and_writes_nothing(api: Api) -> None:
    with api.client() as c:
        r = c.post(f"{API}/tasks", json={"name": "os.system", "args": ["true"]})
        assert r.status_code == 422
        assert r.json()["error"] == "UnknownTaskName" and r.json()["valid_names"] == ["add", "boom", "request_meta"]
        r = c.post(f"{API}/tasks", json={"name": "add", "args": [1]})
        assert r.status_code == 422 and r.json()["error"] == "InvalidArguments"
        assert c.get(f"{API}/queues").json() == []


def test_unknown_task_is_404_and_oversized_body_413(api: Api) -> None:
    with api.client() as c:
        assert c.get(f"{API}/tasks/{QUEUE}:nope").status_code == 404
        assert c.get(f"{API}/queues/{QUEUE}/dead/{QUEUE}:nope").status_code == 404
        r = c.post(f"{API}/tasks", json={"name": "add", "args": ["x" * 100_000, 1]})
        assert r.status_code == 413 and r.json()["error"] == "BodyTooLarge"


def _dummy_path(route: APIRoute) -> str:
    return route.path.replace("{queue}", QUEUE).replace("{task_id}", f"{QUEUE}:x")


def test_every_mutating_route_refuses_a_missing_or_wrong_token(api: Api) -> None:
    routes = [r for r in api.app.routes if isinstance(r, APIRoute) and r.methods & MUTATING]  # type: ignore[attr-defined]
    assert len(routes) >= 6
    for token, status in ((None, 401), ("wrong", 403)):
        with api.client(token) as c:
            for route in routes:
                for method in route.methods & MUTATING:
                    r = c.request(method, _dummy_path(route), json={})
                    assert r.status_code == status, (method, route.path, r.status_code, r.text)


def test_reads_need_the_token_when_configured(api: Api) -> None:
    reads = [r for r in api.app.routes if isinstance(r, APIRoute) and "GET" in r.methods]  # type: ignore[attr-defined]
    with api.client(None) as c:
        for route in reads:
            expected = 200 if route.path in OPEN_PATHS else 401
            assert c.get(_dummy_path(route)).status_code == expected, route.path


def test_no_token_needs_insecure_local() -> None:
    with pytest.raises(Exception, match="insecure-local"):
        Settings()
    assert Settings(insecure_local=True).token is None


def test_redis_down_is_503_then_recovers(redis_server: Any) -> None:
    from apiapp import register
    from webhelpers import serve_asgi

    from taskq import EmbeddedServer, TaskQueue

    server = EmbeddedServer(kind="redis-server").start()
    tq = TaskQueue(server.url)
    register(tq)
    port = server.url.rsplit(":", 1)[1].split("/")[0]
    app = create_app(tq, Settings(insecure_local=True))
    try:
        with serve_asgi(app) as url, httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("/readyz").status_code == 200
            server.stop()
            r = c.get(f"{API}/queues")
            assert r.status_code == 503 and r.json()["error"] == "RedisUnavailable"
            assert c.get("/readyz").status_code == 503
            assert c.get("/healthz").status_code == 200
            server = EmbeddedServer(kind="redis-server", port=int(port)).start()
            assert c.get("/readyz").status_code == 200
            assert c.post(f"{API}/tasks", json={"name": "add", "args": [1, 2]}).status_code == 201
    finally:
        server.stop()
        tq.close()


def test_the_api_imports_only_public_taskq_names() -> None:
    for path in (REPO / "api" / "taskq_api").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("taskq."):
                assert node.module.startswith("taskq.cli"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("taskq.") or alias.name.startswith("taskq.cli"), path.name
    import taskq

    for path in (REPO / "api" / "taskq_api").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "taskq":
                assert all(a.name in taskq.__all__ for a in node.names), path.name


def test_openapi_has_an_example_for_every_response_body(api: Api) -> None:
    schema = json.loads(httpx.get(f"{api.url}/openapi.json").text)
    for name, component in schema["components"]["schemas"].items():
        if name in ("HTTPValidationError", "ValidationError") or not name[0].isupper():
            continue
        assert "examples" in component or "example" in component or name in {"SubmitRequest-Output"}, (
            f"{name} has no example"
        )


def test_list_tasks_pages_neither_skip_nor_repeat_while_the_queue_changes(api: Api) -> None:
    with api.client() as c:
        first = c.post(
            f"{API}/tasks/bulk",
            json={"tasks": [{"name": "add", "args": [i, 0], "priority": 1 + i % 10} for i in range(40)]},
        ).json()["ids"]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"state": "queued", "limit": 7, **({"cursor": cursor} if cursor else {})}
            page = c.get(f"{API}/queues/{QUEUE}/tasks", params=params).json()
            seen += [t["id"] for t in page["tasks"]]
            c.post(f"{API}/tasks", json={"name": "add", "args": [0, 0], "priority": 10})  # the queue changes
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen))
        assert set(first) <= set(seen)
        priorities = [c.get(f"{API}/tasks/{i}").json()["priority"] for i in seen if i in set(first)]
        assert priorities == sorted(priorities, reverse=True)
        assert c.get(f"{API}/queues/{QUEUE}/tasks", params={"cursor": "nonsense"}).status_code == 422
        assert c.get(f"{API}/queues/{QUEUE}/tasks", params={"state": "lost"}).status_code == 422


def test_cors_is_off_by_default_and_configurable(redis_url: str) -> None:
    from apiapp import register
    from webhelpers import serve_asgi

    from taskq import TaskQueue

    tq = TaskQueue(redis_url)
    register(tq)
    origin = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    for origins, allowed in (((), None), (("https://dash.example",), "https://dash.example")):
        with serve_asgi(create_app(tq, Settings(token=TOKEN, cors_origins=origins))) as url:
            r = httpx.options(f"{url}{API}/tasks", headers=origin)
            assert r.headers.get("access-control-allow-origin") == allowed
    tq.close()


def test_requests_are_logged_as_json_lines_with_their_id(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="taskq_api.access")
    with api.client() as c:
        r = c.get(f"{API}/queues", headers={"X-Request-ID": "trace-42"})
    assert r.headers["x-request-id"] == "trace-42"

    def traced() -> list[dict[str, Any]]:
        lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "taskq_api.access"]
        return [x for x in lines if x["request_id"] == "trace-42"]

    # The server logs a request once its response is sent: the client may have it first.
    wait_until(lambda: bool(traced()), what="the request's log line")
    (line,) = traced()
    assert line["method"] == "GET" and line["path"] == f"{API}/queues" and line["status"] == 200


def test_no_redis_needed_to_build_the_app_and_the_core_never_imports_it() -> None:
    from apiapp import register

    from taskq import TaskQueue

    tq = TaskQueue("redis://127.0.0.1:1/0")  # nothing listens there
    register(tq)
    schema = create_app(tq, Settings(token=TOKEN)).openapi()
    assert f"{API}/tasks" in schema["paths"]
    tq.close()
    for path in (REPO / "taskq").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("taskq_api") for n in names), f"the core imports the API package in {path}"


def test_readyz_loads_the_scripts_again_after_a_flush(api: Api, rc: Any) -> None:
    rc.script_flush()
    with api.client() as c:
        assert c.get("/readyz").json() == {"status": "ok", "detail": None}
    assert rc.dbsize() == 0  # the probe wrote nothing
