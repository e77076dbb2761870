"""Moving a queue's slot to another master while a producer enqueues and a worker drains it:
no task is lost or run twice, and the worker's wake-up subscription follows the slot."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import redis
import redis.cluster
from helpers import wait_until
from redis.crc import key_slot

import taskq

TASKS = 300


def move_slot(rc: redis.cluster.RedisCluster, slot: int, src: Any, dst: Any) -> int:
    """Move ``slot`` from ``src`` to ``dst`` as ``redis-cli --cluster reshard`` does (IMPORTING,
    MIGRATING, MIGRATE, SETSLOT NODE), each MIGRATE taking every key the slot holds; returns
    how many keys moved."""
    with (
        redis.Redis(host=src.host, port=src.port, decode_responses=True) as s,
        redis.Redis(host=dst.host, port=dst.port, decode_responses=True) as d,
    ):
        src_id, dst_id = s.cluster("myid"), d.cluster("myid")
        d.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        moved = 0
        while keys := s.execute_command("CLUSTER GETKEYSINSLOT", slot, 100_000):
            s.execute_command("MIGRATE", dst.host, dst.port, "", 0, 10_000, "KEYS", *keys)
            moved += len(keys)
        for node in rc.get_primaries():
            with redis.Redis(host=node.host, port=node.port) as r:
                r.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    return moved


def test_moving_a_queue_slot_under_load_loses_nothing(tq: taskq.TaskQueue, workers: list[Any]) -> None:
    rc: redis.cluster.RedisCluster = tq.redis  # type: ignore[assignment]
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    @tq.task(name="count", queue="mq")
    def count(n: int) -> None:
        with lock:
            runs[n] += 1

    k = tq.ops.queue_keys("mq")
    slot = key_slot(k.queued.encode())
    src = rc.get_node_from_key(k.queued)
    dst = next(n for n in rc.get_primaries() if n.name != src.name)
    workers.append(tq.start_worker(queues=["mq"], concurrency=4))
    handles: list[Any] = []
    half = threading.Event()

    def produce() -> None:
        for n in range(TASKS):
            while True:
                try:
                    handles.append(count.enqueue(n))
                    break
                except taskq.ServerUnavailable:  # the slot was moving: the call wrote nothing, send it again
                    continue
            if n == TASKS // 2:
                half.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert half.wait(60)
    moved = move_slot(rc, slot, src, dst)
    producer.join(120)
    assert moved > 0 and not producer.is_alive()
    wait_until(lambda: sum(runs.values()) >= TASKS, timeout_s=60, what="every task run")
    wait_until(lambda: tq.stats("mq").running == 0, timeout_s=30, what="the last outcomes recorded")
    lost = [n for n in range(TASKS) if runs[n] == 0]
    twice = [n for n, c in runs.items() if c > 1]
    assert (lost, twice) == ([], [])
    assert tq.stats("mq").counters["succeeded"] == TASKS
    assert rc.get_node_from_key(k.queued).name == dst.name
    with redis.Redis(host=dst.host, port=dst.port, decode_responses=True) as d:
        wait_until(
            lambda: dict(d.pubsub_shardnumsub(k.wake)).get(k.wake) == 1, what="the worker subscribed on the new owner"
        )
