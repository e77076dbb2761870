"""A worker whose connection dies silently (issue 17, "a worker that freezes and looks healthy").

The worker talks to Redis through :class:`~reliability.blackhole.TcpProxy`; mid-run the
proxy stops forwarding on every open connection without closing it. Every Redis call the
worker makes has a socket timeout below its lease (taskq.connection), so it notices, goes on
over fresh connections, and no healthy task loses its lease (each runs exactly once). A
claim loop that makes no progress stops the worker's registration from being refreshed, so
it shows as stale instead of alive. Bounds are generous and only stop a hang.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from apps.procs import wait_until
from reliability.blackhole import TcpProxy

import taskq
from taskq.connection import connection_options, worker_socket_timeout_s
from taskq.server import EmbeddedServer
from taskq.worker import BackgroundWorker, Worker

RUNS = "reliability:runs"


@pytest.fixture
def proxy(redis_server: EmbeddedServer, redis_url: str) -> Iterator[TcpProxy]:
    started = TcpProxy(redis_server.host, redis_server.port)
    yield started
    started.close()


def make_app(url: str, counter_url: str) -> taskq.TaskQueue:
    """An app whose task counts its runs over a direct connection (not through the proxy)."""
    app = taskq.TaskQueue(url)
    counter = redis.Redis.from_url(counter_url)

    @app.task(name="reliability.hold", queue="frozen", max_retries=0)
    def hold(n: int, seconds: float) -> int:
        counter.hincrby(RUNS, str(n), 1)
        time.sleep(seconds)
        return n

    return app


def test_socket_options_are_explicit() -> None:
    options = connection_options("redis://h:1/0", worker_socket_timeout_s(30))
    assert options["socket_timeout"] == 5.0 and options["socket_keepalive"] is True
    assert options["socket_keepalive_options"], "keepalive timings are set on Linux"
    assert worker_socket_timeout_s(2) == 0.5 and worker_socket_timeout_s(0.05) == 0.5
    assert "socket_keepalive" not in connection_options("unix:///tmp/redis.sock")


def test_worker_connections_have_timeouts(tq: taskq.TaskQueue, workers: list[BackgroundWorker]) -> None:
    assert tq.redis.connection_pool.connection_kwargs["socket_timeout"] == 10.0
    w = tq.start_worker(queues=["default"], lease_s=4)
    workers.append(w)
    kwargs = w.worker._redis.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.0 and kwargs["socket_keepalive"] is True


def test_black_holed_connections_every_task_runs_once(
    proxy: TcpProxy, redis_url: str, tq: taskq.TaskQueue, rc: redis.Redis
) -> None:
    app = make_app(proxy.url(), redis_url)
    producer = make_app(redis_url, redis_url)  # the producer's own link stays up
    first = [producer.enqueue("reliability.hold", [n, 0.8]) for n in range(8)]
    background = BackgroundWorker(Worker(app, queues=["frozen"], concurrency=4, lease_s=6, idle_poll_s=0.2)).start()
    try:
        wait_until(lambda: rc.hlen(RUNS) >= 2, 30, "the first tasks to start")
        assert proxy.freeze() > 0  # running tasks' heartbeats, the claim loop, the wake-ups: all dead now
        later = [producer.enqueue("reliability.hold", [n, 0.3]) for n in range(8, 16)]
        handles = first + later
        wait_until(
            lambda: all(tq.get(h.id).status is taskq.TaskStatus.SUCCEEDED for h in handles), 60, "every task to succeed"
        )
        runs = {int(k): int(v) for k, v in rc.hgetall(RUNS).items()}
        assert runs == dict.fromkeys(range(16), 1), "a task ran twice: a heartbeat stalled past the lease"
        (me,) = [w for w in tq.workers() if w.id == background.worker.id]
        wait_until(lambda: _health(tq, me.id) is taskq.WorkerHealth.ALIVE, 30, "the worker to be alive")
    finally:
        background.stop(grace_s=0)
        app.close()
        producer.close()


def _health(tq: taskq.TaskQueue, worker_id: str) -> taskq.WorkerHealth | None:
    return next((w.health for w in tq.workers() if w.id == worker_id), None)


def test_stalled_claim_loop_shows_stale(
    tq: taskq.TaskQueue, workers: list[BackgroundWorker], caplog: pytest.LogCaptureFixture
) -> None:
    """A claim that never comes back (whatever the cause) makes the worker stale, not alive;
    once claims work again it is alive again."""
    stuck = asyncio.Event()  # set: claims work again
    worker = Worker(tq, queues=["default"], lease_s=1, idle_poll_s=0.1)
    real_claim = worker._claim

    async def hanging_claim(free: int) -> Any:
        if not stuck.is_set():
            await asyncio.sleep(3600)
        return await real_claim(free)

    worker._claim = hanging_claim  # type: ignore[method-assign]
    caplog.set_level(logging.WARNING, logger="taskq.worker")
    background = BackgroundWorker(worker).start()
    workers.append(background)
    wait_until(lambda: _health(tq, worker.id) is taskq.WorkerHealth.STALE, 30, "the worker to show as stale")
    assert any("claim loop stalled" in r.getMessage() for r in caplog.records)
    assert worker._loop is not None
    worker._loop.call_soon_threadsafe(stuck.set)
    wait_until(lambda: _health(tq, worker.id) is taskq.WorkerHealth.ALIVE, 30, "the worker to be alive again")
    handle = tq.enqueue("x.y", force=True)  # claimed again: the loop runs (the unknown name fails it)
    wait_until(lambda: tq.get(handle.id).attempts >= 1, 30, "a claim")
