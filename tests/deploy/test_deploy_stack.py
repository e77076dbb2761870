"""The standard deployment, run for real without a Docker engine: docker-compose.yml's Redis,
API, three workers and Nginx as local processes with the compose file's own commands,
environment and healthchecks (translated to loopback and free ports by deploystack.py), used
through Nginx as a client would: REST, the WebSocket, the dashboard's files, and a worker
stopped with SIGTERM mid-task handing its tasks back to the others.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploystack import DASHBOARD_DIST, ROOT, LocalStack, Process, seconds
from webhelpers import require
from websockets.sync.client import ClientConnection, connect

#: How the test's compose environment differs from .env.example: a token, and a short grace
#: period so that a task outlives it and is handed back within the test's time.
GRACE_S = 1
SLEEP_TASK_S = 6.0
WAIT_S = 30.0  # a generous bound that only stops a hang


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    """Debian's nginx (.ci/run installs it): required under CI, a skip elsewhere without it."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
    require(found is not None, "nginx is missing: .ci/run installs it (apt-get install nginx)")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def stack(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("stack")
    workdir.chmod(0o755)  # nginx's worker processes may run as another user
    env = {"TASKQ_API_TOKEN": secrets.token_urlsafe(24), "TASKQ_WORKER_GRACE_S": str(GRACE_S)}
    local = LocalStack(workdir=workdir, env=env)
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture
def http(stack: LocalStack) -> Iterator[httpx.Client]:
    token = stack.services["api"]["environment"]["TASKQ_API_TOKEN"]
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.port('nginx')}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
def ws(stack: LocalStack) -> Iterator[ClientConnection]:
    with connect(f"ws://127.0.0.1:{stack.port('nginx')}/api/v1/ws", open_timeout=10) as conn:
        # Catch up from the stream's start, so no event is missed however soon the server's
        # feed starts following; events of earlier tests are of other task ids.
        conn.send(json.dumps({"queues": ["default"], "hz": 1, "since": {"default": "0"}}))
        assert json.loads(conn.recv(timeout=10))["type"] == "subscribed"
        while json.loads(conn.recv(timeout=WAIT_S))["type"] != "caught_up":
            pass
        yield conn


def watch(ws: ClientConnection, done: Callable[[dict[str, list[dict[str, Any]]]], bool]) -> dict[str, list[Any]]:
    """Task events from the WebSocket, by task id, until ``done`` holds."""
    seen: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + WAIT_S
    while not done(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out watching the WebSocket; saw {seen}"
        message = json.loads(ws.recv(timeout=left))
        if message["type"] == "event":
            seen.setdefault(message["event"]["task_id"], []).append(message["event"])
    return seen


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def submit(http: httpx.Client, name: str, args_list: list[list[Any]]) -> list[str]:
    reply = http.post("/api/v1/tasks/bulk", json={"tasks": [{"name": name, "args": a} for a in args_list]})
    assert reply.status_code == 201, reply.text
    ids: list[str] = reply.json()["ids"]
    return ids


def test_all_six_processes_run_and_pass_their_healthchecks(stack: LocalStack) -> None:
    started = [(p.service, p.replica) for p in stack.processes]
    assert sorted(started) == [("api", 1), ("nginx", 1), ("redis", 1), ("worker", 1), ("worker", 2), ("worker", 3)]
    assert started.index(("redis", 1)) < started.index(("api", 1)) < started.index(("nginx", 1))
    assert started.index(("redis", 1)) < started.index(("worker", 1))
    assert all(p.popen.poll() is None for p in stack.processes)
    for name in stack.services:
        assert stack.healthy(name), name


def test_health_routes_and_docs_through_nginx(http: httpx.Client) -> None:
    assert http.get("/healthz").json()["status"] == "ok"
    assert http.get("/readyz").json()["status"] == "ok"
    assert http.get("/openapi.json").json()["info"]["title"] == "taskq HTTP API"
    reply = http.get("/api/v1/registered-tasks")
    assert {"example_tasks.add", "example_tasks.sleep", "example_tasks.fail"} <= {t["name"] for t in reply.json()}


def test_the_token_from_the_environment_guards_writes(stack: LocalStack, http: httpx.Client) -> None:
    body = {"name": "example_tasks.add", "args": [1, 1]}
    base = f"http://127.0.0.1:{stack.port('nginx')}"
    assert httpx.post(f"{base}/api/v1/tasks", json=body, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert httpx.post(f"{base}/api/v1/tasks", json=body, headers=wrong, timeout=10).status_code == 403


def test_dashboard_through_nginx(stack: LocalStack, http: httpx.Client) -> None:
    """Nginx serves the hashed assets from the files; the page comes from the API, with its CSP."""
    require(DASHBOARD_DIST.is_dir(), f"no dashboard build at {DASHBOARD_DIST} (scripts/build_dashboard.sh makes it)")
    index = (DASHBOARD_DIST / "index.html").read_bytes()
    for path in ("/", "/queues/default"):  # a client route reloaded in the browser gets the page
        reply = http.get(path)
        assert reply.status_code == 200 and reply.content == index, path
        assert reply.headers["cache-control"] == "no-cache"
        assert "script-src 'self' 'sha256-" in reply.headers["content-security-policy"]
        assert "x-request-id" in reply.headers  # the API answered
    asset = next(p for p in (DASHBOARD_DIST / "assets").iterdir() if p.suffix == ".js")
    reply = http.get(f"/assets/{asset.name}")
    assert reply.status_code == 200 and reply.content == asset.read_bytes()
    assert "javascript" in reply.headers["content-type"]
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "x-request-id" not in reply.headers  # nginx answered from the files
    assert http.get("/assets/nothing-here.js").status_code == 404


def test_metrics_stay_inside(http: httpx.Client) -> None:
    assert http.get("/metrics").status_code == 403


def test_nginx_logs_keep_no_token_from_a_websocket_url(stack: LocalStack) -> None:
    # Browsers cannot set headers on a WebSocket, so the dashboard may put its token in the URL.
    token = stack.services["api"]["environment"]["TASKQ_API_TOKEN"]
    url = f"ws://127.0.0.1:{stack.port('nginx')}/api/v1/ws?token={token}"
    with connect(url, open_timeout=10) as conn:
        conn.send(json.dumps({"queues": ["default"], "hz": 1}))
        assert json.loads(conn.recv(timeout=10))["type"] == "subscribed"
    deadline = time.monotonic() + WAIT_S
    (nginx,) = stack.of("nginx")
    while "/api/v1/ws" not in nginx.output():  # nginx logs the request once it ends
        assert time.monotonic() < deadline, "nginx never logged the WebSocket request"
        time.sleep(0.05)
    assert token not in nginx.output()


def test_submit_watch_on_the_websocket_and_get_results(http: httpx.Client, ws: ClientConnection) -> None:
    body = {"name": "example_tasks.add", "args": [20, 22]}
    reply = http.post("/api/v1/tasks", json=body, headers={"X-Request-ID": "r-1"})
    assert reply.status_code == 201, reply.text
    first = reply.json()["id"]
    ids = [first, *submit(http, "example_tasks.add", [[i, i] for i in range(10)])]
    seen = watch(ws, lambda seen: all("succeeded" in types(seen.get(i, [])) for i in ids))
    for task_id in ids:
        assert types(seen[task_id])[0] == "enqueued"
        assert types(seen[task_id]).index("started") < types(seen[task_id]).index("succeeded")
    workers = {seen[i][-1]["worker"] for i in ids}
    assert workers and None not in workers
    task = http.get(f"/api/v1/tasks/{first}").json()
    assert (task["status"], task["result"], task["meta"]) == ("succeeded", 42, {"request_id": "r-1"})
    results = [http.get(f"/api/v1/tasks/{i}").json()["result"] for i in ids[1:]]
    assert results == [2 * i for i in range(10)]


def worker_process(stack: LocalStack, worker_id: str) -> Process:
    """The local process of a worker id (``host-pid-random``)."""
    pid = int(worker_id.rsplit("-", 2)[1])
    (process,) = [p for p in stack.of("worker") if p.pid == pid]
    return process


def test_sigterm_hands_running_tasks_back_to_the_other_workers(
    stack: LocalStack, http: httpx.Client, ws: ClientConnection
) -> None:
    ids = submit(http, "example_tasks.sleep", [[SLEEP_TASK_S]] * 6)
    seen = watch(ws, lambda seen: all("started" in types(seen.get(i, [])) for i in ids))
    started_by = {i: next(e["worker"] for e in seen[i] if e["type"] == "started") for i in ids}
    victim_id = max(set(started_by.values()), key=list(started_by.values()).count)
    victim = worker_process(stack, victim_id)
    its_tasks = [i for i, w in started_by.items() if w == victim_id]

    victim.popen.send_signal(signal.SIGTERM)  # what `docker compose stop` sends (stop_signal)
    later = watch(ws, lambda seen: all("succeeded" in types(seen.get(i, [])) for i in ids))
    stop_grace_s = seconds(stack.services["worker"]["stop_grace_period"])
    assert victim.popen.wait(timeout=stop_grace_s) == 0, victim.output()[-3000:]

    for task_id in its_tasks:  # released after the grace period, then run to the end elsewhere
        events = later[task_id]
        assert types(events)[0] == "released", events
        assert events[0]["worker"] == victim_id
        finished = next(e for e in events if e["type"] == "succeeded")
        assert finished["worker"] not in (None, victim_id)
        task = http.get(f"/api/v1/tasks/{task_id}").json()
        assert (task["status"], task["result"]) == ("succeeded", SLEEP_TASK_S)
    assert f"released {len(its_tasks)} running tasks of default back to the queue" in victim.output()
    survivors = [p for p in stack.of("worker") if p is not victim]
    assert all(p.popen.poll() is None for p in survivors)


def test_tasks_survive_a_redis_restart_on_the_volume(stack: LocalStack, http: httpx.Client) -> None:
    volume: Path = stack.tr.volumes["redis-data"]
    assert any(p.name.startswith("appendonly") for p in volume.iterdir()), list(volume.iterdir())
    (task_id,) = submit(http, "example_tasks.add", [[7, 8]])
    deadline = time.monotonic() + WAIT_S
    while http.get(f"/api/v1/tasks/{task_id}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the task did not finish"
        time.sleep(0.1)

    stack.restart("redis")  # the append-only file is all it starts from (no RDB snapshots)
    deadline = time.monotonic() + WAIT_S
    while (reply := http.get(f"/api/v1/tasks/{task_id}")).status_code != 200:
        assert reply.status_code == 503 and time.monotonic() < deadline, reply.text  # until the API reconnects
        time.sleep(0.1)
    assert (reply.json()["status"], reply.json()["result"]) == ("succeeded", 15)
    assert http.get("/readyz").json()["status"] == "ok"


def test_the_override_runs_your_own_task_module(tmp_path: Path) -> None:
    """deploy/compose.tasks.yml: your folder mounted at /app/tasks, your APP named in .env."""
    tasks = tmp_path / "mytasks"
    tasks.mkdir()
    (tasks / "shop_tasks.py").write_text(
        "import taskq\n\ntq = taskq.TaskQueue()\n\n\n@tq.task()\ndef total(prices: list[float]) -> float:\n"
        "    return sum(prices)\n"
    )
    env = {"TASKQ_API_TOKEN": "t", "TASKQ_APP": "shop_tasks:tq", "TASKQ_TASKS_DIR": str(tasks)}
    local = LocalStack(workdir=tmp_path, env=env, overrides=(ROOT / "deploy" / "compose.tasks.yml",))
    try:
        local.start(only=("api",))
        assert sorted(p.service for p in local.processes) == ["api", "redis"]
        reply = httpx.get(f"http://127.0.0.1:{local.port('api')}/api/v1/registered-tasks", timeout=10)
        assert [t["name"] for t in reply.json()] == ["shop_tasks.total"]
    finally:
        local.stop()
