"""Redis at ``maxmemory`` with ``noeviction`` (issue 17): an enqueue that does not fit is
``taskq.ServerFull`` and writes nothing; a worker whose completion does not fit keeps the
task's lease and writes it again once there is room; a policy that evicts is warned about
when a worker starts. A private redis-server: ``CONFIG SET maxmemory 1`` makes it full."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.procs import REPO, wait_until
from reliability.servers import redis_server

import taskq
from taskq.worker import BackgroundWorker


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    with redis_server(tmp_path, "--maxmemory-policy", "noeviction") as port:
        admin = redis.Redis(port=port, decode_responses=True)
        yield f"redis://127.0.0.1:{port}/0", admin
        admin.close()


def everything(admin: redis.Redis) -> dict[str, bytes | None]:
    return {key: admin.dump(key) for key in sorted(admin.scan_iter())}


def test_enqueue_into_a_full_redis_writes_nothing(server: tuple[str, redis.Redis]) -> None:
    url, admin = server
    with taskq.TaskQueue(url) as tq:
        tq.enqueue("t.known", force=True)  # the queue exists, so only the enqueue script is left to refuse
        before = everything(admin)
        admin.config_set("maxmemory", 1)
        for call in (
            lambda: tq.enqueue("t.known", [1], force=True),
            lambda: tq.enqueue("t.other", ["x" * 10_000], queue="newqueue", force=True, idempotency_key="k"),
            lambda: tq.enqueue_many([{"name": "t.known", "args": [i], "force": True} for i in range(50)]),
        ):
            with pytest.raises(taskq.ServerFull):
                call()
        assert everything(admin) == before
        done = subprocess.run(
            [sys.executable, "-m", "taskq.cli", "--url", url, "enqueue", "t.known", "--force"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1 and done.stderr.startswith("error: Redis is full"), done.stderr
        assert "Traceback" not in done.stderr and everything(admin) == before
        admin.config_set("maxmemory", 0)
        assert tq.enqueue("t.known", [2], force=True).status is taskq.TaskStatus.QUEUED


def test_completion_waits_for_room_and_keeps_its_lease(
    server: tuple[str, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    url, admin = server
    runs: list[int] = []
    release = threading.Event()
    with taskq.TaskQueue(url) as tq:

        @tq.task(queue="full")
        def slow(n: int) -> int:
            runs.append(n)
            release.wait(30)
            return n

        caplog.set_level(logging.WARNING, logger="taskq.worker")
        worker = BackgroundWorker(taskq.Worker(tq, queues=["full"], lease_s=30, idle_poll_s=0.1)).start()
        try:
            handle = slow.enqueue(7)
            wait_until(lambda: runs, 30, "the task to start")
            admin.config_set("maxmemory", 1)  # full before the task finishes
            release.set()
            wait_until(lambda: "Redis is full" in caplog.text, 30, "the worker to find Redis full")
            assert tq.get(handle.id).status is taskq.TaskStatus.RUNNING
            admin.config_set("maxmemory", 0)
            assert handle.result(timeout_s=30) == 7
            assert runs == [7]  # recorded once there was room, not run again
        finally:
            admin.config_set("maxmemory", 0)
            worker.stop(grace_s=0)


def test_an_idle_worker_waits_out_a_full_redis(
    server: tuple[str, redis.Redis], caplog: pytest.LogCaptureFixture
) -> None:
    """Its claims, heartbeats and maintenance are all refused while Redis is full (ServerFull):
    it logs them and goes on, and runs what comes once there is room (it used to die at the
    first refused claim)."""
    url, admin = server
    with taskq.TaskQueue(url) as tq:

        @tq.task(queue="full")
        def double(n: int) -> int:
            return 2 * n

        caplog.set_level(logging.WARNING, logger="taskq.worker")
        worker = taskq.Worker(tq, queues=["full"], idle_poll_s=0.05, maintenance_s=0.05, heartbeat_s=0.05)
        background = BackgroundWorker(worker).start()
        try:
            assert double.enqueue(1).result(timeout_s=30) == 2
            admin.config_set("maxmemory", 1)
            for what in ("claim failed", "maintenance failed", "heartbeat failed"):
                wait_until(lambda what=what: f"{what}" in caplog.text, 30, f"a refused {what.split()[0]}")
            assert background.alive and background.error is None
            admin.config_set("maxmemory", 0)
            assert double.enqueue(21).result(timeout_s=30) == 42
        finally:
            admin.config_set("maxmemory", 0)
            background.stop(grace_s=0)
        assert "Redis is full" in caplog.text


@pytest.mark.parametrize(("policy", "warned"), [("allkeys-lru", True), ("volatile-lru", True), ("noeviction", False)])
def test_worker_warns_about_an_evicting_policy(
    server: tuple[str, redis.Redis], caplog: pytest.LogCaptureFixture, policy: str, warned: bool
) -> None:
    url, admin = server
    admin.config_set("maxmemory-policy", policy)
    caplog.set_level(logging.WARNING, logger="taskq.worker")
    with taskq.TaskQueue(url) as tq:
        BackgroundWorker(taskq.Worker(tq, idle_poll_s=0.1)).start().stop(grace_s=0)
    warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    assert bool(warnings) is warned, warnings
    if warned:
        assert policy in warnings[0] and "noeviction" in warnings[0]
