"""taskq's Redis Functions library on a real Redis Cluster (taskq.functions): loaded on every
master before the first call, script calls routed by key as FCALL, and a master that lost the
library (FUNCTION FLUSH here; a new master after resharding or a failover in life) healed on
that master, nothing run twice, through the cluster client's routing and through the per-master
pipelines of a durable plan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.cluster
from clusterhelpers import LocalCluster

import taskq
from taskq import functions, scripts

LIB = scripts.library().name


def has_library(port: int) -> bool:
    with redis.Redis(port=port) as r:
        return any(LIB.encode() in lib for lib in r.function_list())


def calls(port: int, command: str = "fcall") -> int:
    with redis.Redis(port=port) as r:
        return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def reset(cluster: LocalCluster) -> None:
    """No keys, no functions and no statistics on any master."""
    for port in cluster.masters():
        with redis.Redis(port=port) as r:
            r.flushall()
            r.function_flush()
            r.config_resetstat()


def queue_on(tq: taskq.TaskQueue, port: int) -> str:
    """A queue name whose keys live on the master on ``port``."""
    rc: redis.cluster.RedisCluster = tq.redis  # type: ignore[assignment]
    return next(f"fq{i}" for i in range(1000) if rc.get_node_from_key(tq.ops.queue_keys(f"fq{i}").queued).port == port)


@pytest.fixture(autouse=True)
def functions_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(functions.ENV_SWITCH, raising=False)


def test_loaded_on_every_master_and_healed_on_one(redis_cluster: LocalCluster, cluster_url: str) -> None:
    reset(redis_cluster)
    masters = redis_cluster.masters()
    with taskq.TaskQueue(cluster_url) as tq:
        queues = {port: queue_on(tq, port) for port in masters}
        for port, queue in queues.items():
            tq.enqueue("t", [port], queue=queue, force=True)
        assert all(has_library(port) for port in masters)
        assert all(calls(port) == 1 + 1 for port in masters)  # the enqueue, the library's check

        lost = masters[0]
        with redis.Redis(port=lost) as r:
            r.function_flush()
        tq.enqueue("t", [1], queue=queues[lost], force=True)  # "Function not found" there: loaded, sent again
        assert has_library(lost)
        with redis.Redis(port=lost) as r:
            r.function_flush()
        tq.enqueue_many([{"name": "t", "args": [q], "queue": q, "force": True} for q in queues.values()])  # pipeline
        assert [tq.stats(q).queued for q in queues.values()] == [3, 2, 2]
        assert [tq.stats(q).counters["enqueued"] for q in queues.values()] == [3, 2, 2]
        assert [calls(port, "evalsha") for port in masters] == [0, 0, 0]
        assert [calls(port, "function|load") for port in masters] == [3, 3, 3]  # a heal loads on every master


async def test_asyncio_client_heals_a_master(redis_cluster: LocalCluster, cluster_url: str) -> None:
    reset(redis_cluster)
    masters = redis_cluster.masters()
    async with taskq.AsyncTaskQueue(cluster_url) as aq:
        with taskq.TaskQueue(cluster_url) as tq:
            queue = queue_on(tq, masters[1])
        await aq.enqueue("t", queue=queue, force=True)
        assert all(has_library(port) for port in masters)
        with redis.Redis(port=masters[1]) as r:
            r.function_flush()
        handle = await aq.enqueue("t", queue=queue, force=True)
        assert await aq.cancel(handle.id) == "cancelled"
        assert (await aq.stats(queue)).queued == 1 and has_library(masters[1])


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[LocalCluster]:
    """3 masters with a replica each: a durable enqueue waits for the replica."""
    cluster = LocalCluster(masters=3, replicas=1).start()
    yield cluster
    cluster.stop()


def test_durable_plan_heals_on_its_master(replicated_cluster: LocalCluster) -> None:
    """A durable enqueue goes as one pipeline per master (FCALLs, then WAIT): the master that
    lost the library answers "Function not found", gets it back, and the call and its WAIT are
    sent again there; the library a master loads reaches its replica."""
    reset(replicated_cluster)
    masters = replicated_cluster.masters()
    with taskq.TaskQueue(replicated_cluster.url, durable=True) as tq:
        queues = [queue_on(tq, port) for port in masters]
        tq.enqueue_many([{"name": "t", "queue": q, "force": True} for q in queues])
        with redis.Redis(port=masters[2]) as r:
            r.function_flush()
        tq.enqueue_many([{"name": "t", "queue": q, "force": True} for q in queues])
        tq.enqueue("t", queue=queues[2], force=True)
        assert [tq.stats(q).counters["enqueued"] for q in queues] == [2, 2, 3]
        assert all(calls(port) >= 2 for port in masters)
        assert [calls(port, "evalsha") for port in masters] == [0, 0, 0]
    assert has_library(replicated_cluster.replica_of(masters[2]))


async def test_durable_plan_heals_on_its_master_asyncio(replicated_cluster: LocalCluster) -> None:
    reset(replicated_cluster)
    masters = replicated_cluster.masters()
    async with taskq.AsyncTaskQueue(replicated_cluster.url, durable=True) as aq:
        with taskq.TaskQueue(replicated_cluster.url) as tq:
            queues = [queue_on(tq, port) for port in masters]
        await aq.enqueue_many([{"name": "t", "queue": q, "force": True} for q in queues])
        with redis.Redis(port=masters[0]) as r:
            r.function_flush()
        await aq.enqueue_many([{"name": "t", "queue": q, "force": True} for q in queues])
        assert [(await aq.stats(q)).counters["enqueued"] for q in queues] == [2, 2, 2]
        assert [calls(port, "evalsha") for port in masters] == [0, 0, 0] and has_library(masters[0])
