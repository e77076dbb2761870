"""Faults on a Redis Cluster: a master SIGKILLed under load, and a worker SIGKILLed under load.

* A master dies: a 6-node cluster (3 masters, each with a synced replica; tests/clusterhelpers.py,
  ``cluster-node-timeout`` 1000 ms) runs a producer enqueueing round-robin into six queues, two on
  each master, while in-process workers drain them. One master is SIGKILLed; its replica takes
  over; the workers carry on. Replication is asynchronous, so what the dead master acknowledged
  but had not yet sent to its replica is lost, and claims and outcomes it had not sent are done
  again: those are *counted and printed* for the dead master's queues, not asserted 0. What is
  asserted: every task enqueued after the failover runs, the queues on the surviving masters
  lose nothing and run nothing twice, and a second producer with ``durable=True`` (each enqueue
  acknowledged once the owning master's replica has it) loses nothing at all.
* ``durable=True`` on a cluster: an enqueue, one task or a batch over every master, is on the
  replica of each queue's master when the call returns (blocking and asyncio clients).
* A worker dies: real ``taskq worker`` processes (tests/apps/clusterapp.py) drain queues on every
  master; one is SIGKILLed mid-run and a replacement started; the dead one's leases expire and
  are run again: nothing is lost, and a task runs twice only if the killed worker had it.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.cluster
from apps.procs import Workers
from clusterhelpers import LocalCluster
from helpers import wait_until

import taskq
from taskq.connection import sync_client
from taskq.task import TaskStatus

#: Tasks to enqueue once the failover is over (all of them must run).
AFTER = 300
#: Tasks to enqueue before the master is killed.
BEFORE = 600
#: Queues per master.
PER_MASTER = 2


@pytest.fixture
def replicated_cluster() -> Iterator[LocalCluster]:
    """3 masters and 3 replicas, in sync, for one test (the kill test leaves a master dead); a
    master silent for 1 s is failed over (on loopback a live node answers the cluster bus in well
    under that, even on a loaded 2-core machine)."""
    cluster = LocalCluster(masters=3, replicas=1, node_timeout_ms=1000).start()
    yield cluster
    cluster.stop()


def queues_by_master(tq: taskq.TaskQueue, per_master: int) -> dict[str, list[str]]:
    """``per_master`` queue names on each master (by the slot of each queue's keys), keyed by
    the master's ``host:port``."""
    rc: redis.cluster.RedisCluster = tq.redis  # type: ignore[assignment]
    found: dict[str, list[str]] = {n.name: [] for n in rc.get_primaries()}
    for i in range(1000):
        name = f"fq{i}"
        owner = found[rc.get_node_from_key(tq.ops.queue_keys(name).queued).name]
        if len(owner) < per_master:
            owner.append(name)
        if all(len(q) == per_master for q in found.values()):
            return found
    raise AssertionError("no queue names spread over every master")


def replica_has(cluster: LocalCluster, tq: Any, handles: list[Any], queue_of: list[str]) -> bool:
    """Whether every task of ``handles`` (in ``queue_of[i]``) is on the replica of its master."""
    rc: redis.cluster.RedisCluster = tq.redis
    for handle, queue in zip(handles, queue_of, strict=True):
        key = tq.ops.queue_keys(queue).task(handle.id)
        master = rc.get_node_from_key(key)
        with redis.Redis(port=cluster.replica_of(master.port)) as replica:
            replica.execute_command("READONLY")  # a replica serves reads of its master's slots
            if replica.exists(key) != 1:
                return False
    return True


def test_durable_enqueue_waits_for_the_queue_masters_replica(replicated_cluster: LocalCluster) -> None:
    with taskq.TaskQueue(replicated_cluster.url, durable=True) as tq:
        queues = [q for qs in queues_by_master(tq, 1).values() for q in qs]
        for n in range(6):  # read on the replica right after: it is there
            queue = queues[n % len(queues)]
            handle = tq.enqueue("t", [n], queue=queue, force=True)
            assert replica_has(replicated_cluster, tq, [handle], [queue])
        batch = [queues[n % len(queues)] for n in range(60)]  # one batch over every master
        handles = tq.enqueue_many([{"name": "t", "args": [n], "queue": q, "force": True} for n, q in enumerate(batch)])
        assert replica_has(replicated_cluster, tq, handles, batch)
        # the WAIT goes to the queue's own master: with that master's replica stopped, only its queue waits in vain
        rc: redis.cluster.RedisCluster = tq.redis  # type: ignore[assignment]
        master = rc.get_node_from_key(tq.ops.queue_keys(queues[0]).queued)
        stopped = replicated_cluster.procs[replicated_cluster.ports.index(replicated_cluster.replica_of(master.port))]
        stopped.send_signal(signal.SIGSTOP)
        try:
            with redis.Redis(port=master.port) as r:
                r.script_flush()  # NOSCRIPT: the script is loaded and sent again, with a WAIT after it
            with pytest.raises(taskq.NotReplicated, match="0 of 1 replica"):
                tq.enqueue("t", [2], queue=queues[0], force=True)
            with pytest.raises(taskq.NotReplicated, match="0 of 1 replica"):
                tq.enqueue("t", [0], queue=queues[0], force=True, idempotency_key="k0")
            tq.enqueue("t", [1], queue=queues[1], force=True)
            with pytest.raises(taskq.NotReplicated):  # a batch touching it too
                tq.enqueue_many([{"name": "t", "queue": q, "force": True} for q in queues])
        finally:
            stopped.send_signal(signal.SIGCONT)


async def test_durable_enqueue_on_a_cluster_asyncio(replicated_cluster: LocalCluster) -> None:
    async with taskq.AsyncTaskQueue(replicated_cluster.url, durable=True) as atq:
        with taskq.TaskQueue(replicated_cluster.url) as tq:
            queues = [q for qs in queues_by_master(tq, 1).values() for q in qs]
            batch = [queues[n % len(queues)] for n in range(30)]
            handles = await atq.enqueue_many(
                [{"name": "t", "args": [n], "queue": q, "force": True} for n, q in enumerate(batch)]
            )
            one = await atq.enqueue("t", [0], queue=queues[0], force=True)
            assert replica_has(replicated_cluster, tq, [*handles, one], [*batch, queues[0]])


def test_killing_a_master_fails_over_and_the_workers_carry_on(replicated_cluster: LocalCluster) -> None:
    runs: Counter[int] = Counter()
    lock = threading.Lock()
    acked: dict[int, str] = {}  # task number -> its queue, once the enqueue returned
    durable_acked: dict[int, str] = {}  # the same for the durable=True producer (numbers from 10**6)
    after: list[int] = []  # enqueued once the failover was over
    failed_over = threading.Event()
    with (
        taskq.TaskQueue(replicated_cluster.url) as tq,
        taskq.TaskQueue(replicated_cluster.url, durable=True) as durable_tq,
    ):

        @tq.task(name="count", max_retries=50)
        def count(n: int) -> None:
            with lock:
                runs[n] += 1
            time.sleep(0.002)

        placed = queues_by_master(tq, PER_MASTER)
        victim = next(iter(placed))  # the master to kill, and its queues
        doomed = set(placed[victim])
        queues = [q for qs in placed.values() for q in qs]

        def produce() -> None:
            n = 0
            while len(after) < AFTER:
                n += 1
                queue = queues[n % len(queues)]
                while True:
                    try:  # the idempotency key makes a retried enqueue write one task, not two
                        tq.enqueue("count", [n], queue=queue, idempotency_key=f"n{n}")
                        break
                    except taskq.ServerUnavailable:  # the master is dead and not yet replaced
                        time.sleep(0.01)
                acked[n] = queue
                if failed_over.is_set():
                    after.append(n)

        def produce_durably() -> None:  # until the failover: then the promoted replica has no replica
            n = 10**6
            while not failed_over.is_set():
                n += 1
                queue = queues[n % len(queues)]
                try:
                    durable_tq.enqueue("count", [n], queue=queue, idempotency_key=f"n{n}", force=True)
                except (taskq.ServerUnavailable, taskq.NotReplicated):
                    time.sleep(0.01)  # not acknowledged: the producer knows it may be lost
                    continue
                durable_acked[n] = queue

        worker = tq.start_worker(queues=queues, concurrency=4, lease_s=2)
        try:
            producer = threading.Thread(target=produce, daemon=True)
            durable_producer = threading.Thread(target=produce_durably, daemon=True)
            producer.start()
            durable_producer.start()
            wait_until(lambda: len(acked) >= BEFORE, timeout_s=60, what=f"{BEFORE} enqueued")
            port = int(victim.rsplit(":", 1)[1])
            replica = replicated_cluster.replica_of(port)
            killed_at = len(acked)
            replicated_cluster.kill(port)
            replicated_cluster.wait_failed_over(port, replica)
            failed_over.set()
            producer.join(120)
            durable_producer.join(30)
            assert not producer.is_alive() and not durable_producer.is_alive(), "a producer is stuck"
            wait_until(lambda: all(runs[n] for n in after), timeout_s=60, what="every task enqueued after it run")
            wait_until(lambda: all(tq.stats(q).pending == 0 for q in queues), timeout_s=60, what="every queue drained")
            assert worker.alive
        finally:
            worker.stop(grace_s=0)
    lost = {n for n in acked if runs[n] == 0}
    durable_lost = sorted(n for n in durable_acked if runs[n] == 0)
    twice = {n for n, c in runs.items() if c > 1}
    survivors_lost = sorted(n for n in lost if acked[n] not in doomed)
    survivors_twice = sorted(n for n in twice if queues[n % len(queues)] not in doomed)  # both producers' rule
    counts = {
        "tasks": len(acked),
        "acked_before_kill": killed_at,
        "after_failover": len(after),
        "on_killed_master": sum(q in doomed for q in acked.values()),
        "lost": len(lost),
        "run_twice": len(twice),
        "durable_tasks": len(durable_acked),
        "durable_on_killed_master": sum(q in doomed for q in durable_acked.values()),
        "durable_lost": len(durable_lost),
    }
    print(f"\nmaster kill fault counts: {json.dumps(counts)}")
    assert after and not [n for n in after if runs[n] == 0]  # the workers carried on after the failover
    assert (survivors_lost, survivors_twice) == ([], [])  # the other masters' queues were untouched
    assert lost <= {n for n, q in acked.items() if q in doomed}
    assert durable_lost == [] and counts["durable_on_killed_master"] > 0


KILL_TASKS = 400


def test_killing_a_worker_on_a_cluster_loses_nothing(cluster_url: str, tmp_path: Path) -> None:
    with taskq.TaskQueue(cluster_url) as tq:
        queues = [q for qs in queues_by_master(tq, 1).values() for q in qs]
        procs = Workers(cluster_url, tmp_path)
        try:
            options = ("--queues", ",".join(queues), "--concurrency", "2", "--lease-s", "1", "--grace-s", "0.5")
            app = "tests.apps.clusterapp:tq"
            live = [procs.start(*options, app=app) for _ in range(2)]
            requests: list[dict[str, Any]] = [
                {"name": "cluster.work", "args": [n], "kwargs": {"hold_ms": 20}, "queue": queues[n % len(queues)],
                 "force": True}
                for n in range(KILL_TASKS)
            ]  # fmt: skip
            ids = [h.id for h in tq.enqueue_many(requests)]
            rc = sync_client(cluster_url)
            wait_until(lambda: rc.llen("{clusterfault}:ran") >= KILL_TASKS // 4, timeout_s=60, what="a quarter run")
            victim = live[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            procs.start(*options, app=app, wait_ready=False)
            wait_until(lambda: all(tq.stats(q).pending == 0 for q in queues), timeout_s=60, what="every queue drained")
            ran: dict[int, list[int]] = {}
            for entry in rc.lrange("{clusterfault}:ran", 0, -1):
                n, pid = str(entry).split(":")
                ran.setdefault(int(n), []).append(int(pid))
            rc.close()
            tasks = tq._exec.run(tq.ops.get_many(ids))
        finally:
            procs.cleanup()
    not_succeeded = [i for i, t in zip(ids, tasks, strict=True) if t is None or t.status is not TaskStatus.SUCCEEDED]
    twice = {n: pids for n, pids in ran.items() if len(pids) > 1}
    counts = {
        "tasks": KILL_TASKS,
        "lost": len(not_succeeded),
        "never_ran": KILL_TASKS - len(ran),
        "run_twice": len(twice),
    }
    print(f"\nworker kill fault counts on a cluster: {json.dumps(counts)}")
    assert not_succeeded == [] and len(ran) == KILL_TASKS
    assert all(set(pids[:-1]) == {victim.pid} for pids in twice.values()), twice  # only the killed one's
