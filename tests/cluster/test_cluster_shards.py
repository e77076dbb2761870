"""A sharded hot queue on the real 3-master cluster: its K=3 sub-queues land on three
different masters, one worker drains a few hundred tasks from all of them, none lost and none
run twice, and snapshot, inspect, list_tasks and events show it as one queue without a
cross-slot command."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis.cluster
from clusterhelpers import LocalCluster
from helpers import wait_until
from redis.crc import key_slot
from test_cluster import command_slots, sent  # noqa: F401 - sent: the fixture recording every command sent

import taskq
from taskq.keys import queue_of_task_id
from taskq.shards import physical_queues, sub_queues


@pytest.fixture
def rc(redis_cluster: LocalCluster) -> Iterator[redis.cluster.RedisCluster]:
    client = redis_cluster.client()
    yield client
    client.close()


def test_sub_queues_land_on_different_masters(tq: taskq.TaskQueue, rc: redis.cluster.RedisCluster) -> None:
    for queue in ("hot", "emails", "q7"):
        keys = [f"taskq:{{{sub}}}:queued" for sub in sub_queues(queue, 3)]
        slots = [int(rc.cluster_keyslot(k)) for k in keys]
        assert slots == [key_slot(k.encode()) for k in keys]  # the server agrees with our CRC16
        nodes = {rc.get_node_from_key(k).name for k in keys}
        assert len(nodes) == 3, (queue, slots)


def test_a_worker_drains_a_sharded_queue_on_three_masters(
    tq: taskq.TaskQueue, rc: redis.cluster.RedisCluster, workers: list
) -> None:
    ran: Counter[str] = Counter()
    lock = threading.Lock()

    @tq.task(queue="hot")
    def work(i: int) -> int:
        with lock:
            ran[taskq.current_task().id] += 1
        return i

    tq.configure_queue("hot", shards=3)
    n = 300
    handles = tq.enqueue_many([{"name": work.name, "args": [i], "queue": "hot"} for i in range(n)])
    handles += [work.enqueue(n + i) for i in range(30)]  # the single-enqueue path too
    queued_on = Counter(rc.get_node_from_key(f"taskq:{{{queue_of_task_id(h.id)}}}:queued").name for h in handles)
    assert len(queued_on) == 3 and min(queued_on.values()) == (n + 30) // 3
    assert tq.stats("hot").queued == n + 30

    workers.append(tq.start_worker(queues=["hot"], concurrency=8))
    wait_until(lambda: tq.stats("hot").counters.get("succeeded", 0) == n + 30, timeout_s=60)
    assert sorted(h.result(timeout_s=5) for h in handles) == list(range(n + 30))
    assert set(ran) == {h.id for h in handles}  # nothing lost
    assert set(ran.values()) == {1}  # nothing ran twice
    counts = tq.stats("hot")
    assert (counts.queued, counts.running, counts.dead) == (0, 0, 0)
    for q in physical_queues("hot", 3):
        assert rc.zcard(f"taskq:{{{q}}}:queued") == 0


def test_reads_show_one_queue_without_a_cross_slot_command(
    tq: taskq.TaskQueue,
    rc: redis.cluster.RedisCluster,
    sent: list[tuple[Any, ...]],  # noqa: F811 - the fixture imported above
) -> None:
    tq.configure_queue("hot", shards=3)
    queued = [h.id for h in tq.enqueue_many([{"name": "t", "force": True, "queue": "hot"} for _ in range(30)])]
    scheduled = [tq.enqueue("t", force=True, queue="hot", delay_s=60 + i).id for i in range(3)]
    sent.clear()  # the reads from here on

    for snap in (tq.snapshot("hot"), tq.snapshot()):
        q = snap.queue("hot")
        assert (q.queued, q.scheduled, q.shards, q.counters["enqueued"]) == (30, 3, 3, 33)
        assert not any("~" in x.queue for x in snap.queues)  # sub-queues are not listed
    seen = tq.inspect("hot", limit=100)
    assert (seen.queued_total, seen.scheduled_total) == (30, 3)
    assert sorted(e.id for e in seen.queued) == sorted(queued)
    listed: list[str] = []
    cursor = None
    while True:
        page = tq.list_tasks("hot", "queued", cursor=cursor, limit=7)
        listed += [t.id for t in page.tasks]
        if (cursor := page.next_cursor) is None:
            break
    assert listed == [e.id for e in seen.queued]  # the merged claim order, each once
    assert [t.id for t in tq.list_tasks("hot", "scheduled").tasks] == scheduled
    events = list(tq.events("hot", since="0", follow=False))
    assert sorted(e.task_id for e in events if e.type == "enqueued") == sorted(queued)
    assert sorted(e.task_id for e in events if e.type == "scheduled") == sorted(scheduled)
    assert {e.queue for e in events} == {"hot"}

    spanning = [args for args in sent if len(command_slots(rc, args)) > 1]
    assert spanning == [], spanning[:3]
    touched = {slot for args in sent for slot in command_slots(rc, args)}
    assert {key_slot(f"taskq:{{{q}}}:queued".encode()) for q in physical_queues("hot", 3)} <= touched
