"""Sharded hot queues (taskq.shards) on one redis-server: ``configure_queue(q, shards=K)``
spreads a queue's tasks over K sub-queues; producers route, workers drain them all, ids find
their task, counts show one queue, and bad or unsafe changes are typed errors that write nothing."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from functools import partial

import pytest
import redis
from helpers import wait_until
from redis.crc import key_slot

import taskq
from taskq.keys import check_queue_name, logical_queue, queue_of_task_id, shard_queue
from taskq.shard_reads import layout_plan
from taskq.shards import (
    MAX_SHARDS,
    InvalidShards,
    NotSupportedOnShardedQueue,
    ShardsBusy,
    physical_queues,
    sub_queues,
)
from taskq.telemetry import EventReader


def test_sub_queue_names_are_reserved_and_spread_over_the_slot_space() -> None:
    names = sub_queues("hot", 3)
    assert [logical_queue(n) for n in names] == ["hot"] * 3
    assert [key_slot(n.encode()) * 3 // 16384 for n in names] == [0, 1, 2]
    with pytest.raises(taskq.InvalidQueueName):
        check_queue_name("hot~1")  # the separator is reserved: no user queue is named so
    assert queue_of_task_id(f"{shard_queue('hot', 1, 8)}:0193abcd") == shard_queue("hot", 1, 8)


def test_enqueue_spreads_over_shards_and_ids_name_their_sub_queue(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.configure_queue("hot", shards=3)
    handles = [tq.enqueue("t", force=True, queue="hot") for _ in range(30)]
    handles += tq.enqueue_many([{"name": "t", "force": True, "queue": "hot"} for _ in range(30)])
    per_shard = Counter(queue_of_task_id(h.id) for h in handles)
    assert set(per_shard) == set(sub_queues("hot", 3))
    assert sorted(per_shard.values()) == [20, 20, 20]  # round-robin
    for sub in sub_queues("hot", 3):
        assert rc.zcard(f"taskq:{{{sub}}}:queued") == 20
    assert rc.zcard("taskq:{hot}:queued") == 0
    assert rc.smembers("taskq:queues") == {"hot"}  # one logical queue registered


def test_stats_show_one_logical_queue(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("hot", shards=4)
    tq.enqueue_many([{"name": "t", "force": True, "queue": "hot"} for _ in range(10)])
    tq.enqueue("t", force=True, queue="hot", delay_s=60)
    counts = tq.stats("hot")
    assert (counts.queue, counts.queued, counts.scheduled) == ("hot", 10, 1)
    assert counts.counters.get("enqueued") == 11
    assert [c.queue for c in tq.all_stats()] == ["hot"]


def test_a_worker_drains_every_shard_and_get_cancel_work_by_id(tq: taskq.TaskQueue, workers: list) -> None:
    done: list[str] = []
    lock = threading.Lock()

    @tq.task(queue="hot")
    def work(i: int) -> int:
        with lock:
            done.append(taskq.current_task().id)
        return i

    tq.configure_queue("hot", shards=3)
    victim = work.enqueue(-1, delay_s=60)
    assert tq.get(victim.id).status is taskq.TaskStatus.SCHEDULED
    assert victim.cancel() == "cancelled"
    assert tq.get(victim.id).status is taskq.TaskStatus.CANCELLED
    handles = [work.enqueue(i) for i in range(60)]
    workers.append(tq.start_worker(queues=["hot"], concurrency=4))
    assert [h.result(timeout_s=20) for h in handles] == list(range(60))
    assert sorted(done) == sorted(h.id for h in handles)  # each ran once, none of the cancelled
    assert {queue_of_task_id(i) for i in done} == set(sub_queues("hot", 3))
    assert [w.queues for w in tq.workers()] == [("hot",)]  # registered by the queue's name
    assert tq.stats("hot").counters.get("succeeded") == 60


def test_an_idempotency_key_returns_the_first_id(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("hot", shards=5)
    first = [tq.enqueue("t", force=True, queue="hot", idempotency_key=f"k{i}").id for i in range(20)]
    again = [tq.enqueue("t", force=True, queue="hot", idempotency_key=f"k{i}").id for i in range(20)]
    other = taskq.TaskQueue(tq.url)  # another producer, its own round-robin and cache
    try:
        third = [
            h.id
            for h in other.enqueue_many(
                [{"name": "t", "force": True, "queue": "hot", "idempotency_key": f"k{i}"} for i in range(20)]
            )
        ]
    finally:
        other.close()
    assert first == again == third
    assert len({queue_of_task_id(i) for i in first}) > 1  # the keys spread too
    assert tq.stats("hot").queued == 20


@pytest.mark.parametrize("bad", [0, -1, MAX_SHARDS + 1, 2.0, "3", True, None])
def test_bad_shard_count_is_a_typed_error_and_writes_nothing(tq: taskq.TaskQueue, rc: redis.Redis, bad: object) -> None:
    if bad is None:  # None means "leave as it is": no error, no shards
        tq.configure_queue("hot", shards=None)  # type: ignore[arg-type]
        assert rc.hget("taskq:{hot}:config", "shards") is None
        return
    with pytest.raises(InvalidShards) as err:
        tq.configure_queue("hot", shards=bad, aging_s=5.0)  # type: ignore[arg-type]
    assert isinstance(err.value, taskq.InvalidOption)
    assert rc.keys("*") == []


def test_changing_k_is_refused_while_sub_queues_hold_tasks(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.enqueue("t", force=True, queue="hot")
    tq.configure_queue("hot", shards=3)  # from unsharded: allowed, the base queue stays served
    tq.enqueue("t", force=True, queue="hot")
    for k in (1, 2, 4):
        with pytest.raises(ShardsBusy):
            tq.configure_queue("hot", shards=k)
    assert rc.hget("taskq:{hot}:config", "shards") == "3"
    assert tq.stats("hot").queued == 2


def test_rate_limits_are_refused_on_a_sharded_queue(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.configure_queue("hot", shards=2)
    with pytest.raises(NotSupportedOnShardedQueue):
        tq.configure_queue("hot", rate="10/s")
    tq.configure_queue("limited", rate="10/s")
    with pytest.raises(NotSupportedOnShardedQueue):
        tq.configure_queue("limited", shards=2)
    assert rc.hget("taskq:{limited}:config", "shards") is None

    @tq.task(queue="hot", rate="5/s")
    def slow() -> None: ...

    worker = taskq.Worker(tq, queues=["hot"])
    with pytest.raises(NotSupportedOnShardedQueue):
        asyncio.run(worker.run())


def test_settings_reach_every_sub_queue(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.configure_queue("hot", shards=3, default_priority=8)
    for q in physical_queues("hot", 3):
        assert rc.hget(f"taskq:{{{q}}}:config", "default_priority") == "8"
    h = tq.enqueue("t", force=True, queue="hot")
    assert tq.get(h.id).priority == 8


def drain_order(tq: taskq.TaskQueue, workers: list, shards: int, n: int, seed: int) -> list[tuple[str, int]]:
    """Enqueue ``n`` tasks with random priorities into ``prio`` split into ``shards``, drain
    them with one worker running one at a time; (sub-queue, priority) in the order they started."""
    started: list[tuple[str, int]] = []

    @tq.task(queue="prio", name="job")
    def job(p: int) -> None:
        started.append((queue_of_task_id(taskq.current_task().id), p))

    tq.configure_queue("prio", shards=shards)
    rng = random.Random(seed)
    prios = [rng.randint(1, 10) for _ in range(n)]
    tq.enqueue_many([{"name": "job", "args": [p], "queue": "prio", "priority": p} for p in prios])
    workers.append(tq.start_worker(queues=["prio"], concurrency=1))
    wait_until(lambda: len(started) == n, timeout_s=30, what="the drain")
    return started


def inversions(priorities: list[int]) -> int:
    """Pairs started in the wrong order: a lower priority before a higher one."""
    return sum(1 for i, a in enumerate(priorities) for b in priorities[i + 1 :] if a < b)


@pytest.mark.parametrize("shards", [1, 3])
def test_priority_is_strict_within_each_shard(tq: taskq.TaskQueue, workers: list, shards: int) -> None:
    n = 150
    started = drain_order(tq, workers, shards, n, seed=shards)
    for sub in physical_queues("prio", shards):
        mine = [p for q, p in started if q == sub]
        assert mine == sorted(mine, reverse=True), sub  # exact within a sub-queue
    total = inversions([p for _, p in started])
    if shards == 1:
        assert total == 0
    else:
        # Across sub-queues the order is approximate: the worker takes the sub-queues in turn,
        # each in strict order, so a pair goes wrong only across sub-queues. Random order would
        # invert half of the unequal pairs; measured here 8-14% over 12 runs, 12.5% (median) at
        # 600 tasks (benchmarks/shard_inversions.py, docs/ARCHITECTURE.md): bound at a quarter.
        prios = [p for _, p in started]
        unequal = sum(1 for i, a in enumerate(prios) for b in prios[i + 1 :] if a != b)
        assert 0 < total < unequal / 4


def test_dead_letters_span_every_shard(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task(queue="hot", max_retries=0)
    def broken(i: int) -> None:
        raise ValueError(i)

    tq.configure_queue("hot", shards=3)
    ids = {broken.enqueue(i).id for i in range(9)}
    worker = tq.start_worker(queues=["hot"], concurrency=3)
    workers.append(worker)
    wait_until(lambda: tq.stats("hot").dead == 9, what="nine dead")
    worker.stop()
    dead = tq.dead_letters("hot")
    listed = dead.list()
    assert {t.id for t in listed} == ids
    assert len({queue_of_task_id(t.id) for t in listed}) == 3
    assert [t.id for t in dead.list(limit=4, offset=2)] == [t.id for t in listed[2:6]]
    one = listed[0].id
    assert dead.requeue([one]) == 1
    assert tq.get(one).status is taskq.TaskStatus.QUEUED
    assert dead.purge([listed[1].id, listed[2].id, "hot:nonsense"]) == 2
    assert dead.requeue(error_type="ValueError") == 6
    counts = tq.stats("hot")
    assert (counts.queued, counts.dead) == (7, 0)
    assert dead.list() == []


def test_the_async_client_routes_counts_and_configures_alike(redis_url: str) -> None:
    async def scenario() -> None:
        atq = taskq.AsyncTaskQueue(redis_url)
        try:
            await atq.configure_queue("hot", shards=3, default_priority=7)
            handles = [await atq.enqueue("t", force=True, queue="hot") for _ in range(6)]
            handles += await atq.enqueue_many([{"name": "t", "force": True, "queue": "hot"} for _ in range(6)])
            assert Counter(queue_of_task_id(h.id) for h in handles) == dict.fromkeys(sub_queues("hot", 3), 4)
            assert (await atq.get(handles[0].id)).priority == 7
            assert (await atq.stats("hot")).queued == 12
            assert await handles[0].cancel() == "cancelled"
            assert [c.queue for c in await atq.all_stats()] == ["hot"]
            assert await atq.dead_letters("hot").list() == []
            snap = (await atq.snapshot("hot")).queue("hot")
            assert (snap.queued, snap.shards, snap.counters["cancelled"]) == (11, 3, 1)
            assert (await atq.inspect("hot")).queued_total == 11
            page = await atq.list_tasks("hot", "queued", limit=1000)
            assert sorted(t.id for t in page.tasks) == sorted(h.id for h in handles[1:])
            events = [e async for e in atq.events("hot", since="0", follow=False)]
            assert sorted(e.task_id for e in events if e.type == "enqueued") == sorted(h.id for h in handles)
            assert {e.queue for e in events} == {"hot"}
            with pytest.raises(ShardsBusy):
                await atq.configure_queue("hot", shards=2)
        finally:
            await atq.aclose()

    asyncio.run(scenario())


def fill_sharded_queue(tq: taskq.TaskQueue) -> tuple[list[str], list[str], list[int]]:
    """One task in the base queue (enqueued before the queue was sharded), then 12 queued with
    mixed priorities and 3 delayed ones over K=3 sub-queues: (queued ids, scheduled ids,
    queued priorities)."""
    first = tq.enqueue("t", force=True, queue="hot", priority=2).id
    tq.configure_queue("hot", shards=3)
    priorities = [2, *(1 + i % 10 for i in range(12))]
    queued = [first, *(tq.enqueue("t", force=True, queue="hot", priority=p).id for p in priorities[1:])]
    scheduled = [tq.enqueue("t", force=True, queue="hot", delay_s=60 + i).id for i in range(3)]
    assert queue_of_task_id(first) == "hot" and {queue_of_task_id(i) for i in queued[1:]} == set(sub_queues("hot", 3))
    return queued, scheduled, priorities


def test_snapshot_shows_a_sharded_queue_as_one(tq: taskq.TaskQueue) -> None:
    _, scheduled, priorities = fill_sharded_queue(tq)
    one = tq.snapshot("hot").queue("hot")
    (every,) = tq.snapshot().queues  # every queue: the sub-queues are not listed
    for q in (one, every):
        assert (q.queue, q.shards, q.queued, q.scheduled, q.running, q.dead) == ("hot", 3, 13, 3, 0, 0)
        assert dict(q.by_priority) == Counter(priorities)
        assert q.counters["enqueued"] == 16
        assert q.windows[0].length_s == 10 and q.latency["wait"].samples == 0
    counts = tq.stats("hot")
    assert (counts.queued, counts.scheduled, counts.counters["enqueued"]) == (one.queued, one.scheduled, 16)
    due = [tq.get(i).due_ms for i in scheduled]
    assert one.next_due_ms == min(d for d in due if d is not None)
    assert "~" not in taskq.prometheus_text(tq.snapshot())  # `taskq metrics` names the logical queue


def test_inspect_and_list_tasks_merge_the_sub_queues(tq: taskq.TaskQueue) -> None:
    queued, scheduled, priorities = fill_sharded_queue(tq)
    seen = tq.inspect("hot")
    assert (seen.queue, seen.totals) == ("hot", {"queued": 13, "scheduled": 3, "running": 0, "dead": 0})
    assert sorted(e.id for e in seen.queued) == sorted(queued)
    assert [e.position for e in seen.queued] == list(range(13))
    assert [e.score for e in seen.queued] == sorted(e.score for e in seen.queued)
    assert [e.priority for e in seen.queued] == sorted(priorities, reverse=True)  # strict: by score is by priority
    assert [e.id for e in seen.scheduled] == scheduled  # by due time
    few = tq.inspect("hot", limit=4)
    assert [e.id for e in few.queued] == [e.id for e in seen.queued[:4]] and few.queued_total == 13

    for state, expected in (("queued", [e.id for e in seen.queued]), ("scheduled", scheduled)):
        listed: list[str] = []
        cursor = None
        while True:
            page = tq.list_tasks("hot", state, cursor=cursor, limit=5)
            listed += [t.id for t in page.tasks]
            assert len(page.tasks) <= 5
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert listed == expected  # each once, in the merged order, the pages neither skip nor repeat
    assert tq.list_tasks("hot", "running").tasks == []
    with pytest.raises(taskq.InvalidOption):
        tq.list_tasks("hot", "sideways")


def test_events_of_a_sharded_queue_name_the_queue(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task(queue="hot")
    def work(i: int) -> int:
        return i

    tq.configure_queue("hot", shards=3)
    handles = [work.enqueue(i) for i in range(9)]
    workers.append(tq.start_worker(queues=["hot"], concurrency=3))
    assert [h.result(timeout_s=20) for h in handles] == list(range(9))
    ids = {h.id for h in handles}
    for queues in ("hot", None):
        events = list(tq.events(queues, since="0", follow=False))
        assert {e.queue for e in events} == {"hot"}
        for kind in ("enqueued", "started", "succeeded"):
            assert sorted(e.task_id for e in events if e.type == kind) == sorted(ids), kind
    # lifetime latency counts up to the start of the current second: each sub-queue's samples, summed
    wait_until(lambda: tq.snapshot("hot").queue("hot").latency["run"].samples == 9, what="nine run samples")
    assert tq.snapshot("hot").queue("hot").counters["succeeded"] == 9


def test_running_tasks_of_every_sub_queue_are_listed(tq: taskq.TaskQueue, workers: list) -> None:
    release = threading.Event()

    @tq.task(queue="hot")
    def hold() -> None:
        release.wait(20)

    tq.configure_queue("hot", shards=2)
    handles = [hold.enqueue() for _ in range(4)]
    workers.append(tq.start_worker(queues=["hot"], concurrency=4))
    try:
        wait_until(lambda: tq.stats("hot").running == 4, what="four running")
        q = tq.snapshot("hot", running_limit=5).queue("hot")
        assert q.running == 4 and sorted(t.id for t in q.running_tasks) == sorted(h.id for h in handles)
        assert [t.deadline_ms for t in q.running_tasks] == sorted(t.deadline_ms for t in q.running_tasks)
        assert len(tq.snapshot("hot", running_limit=2).queue("hot").running_tasks) == 2
        seen = tq.inspect("hot")
        assert seen.running_total == 4 and {e.id for e in seen.running} == {h.id for h in handles}
        assert {t.id for t in tq.list_tasks("hot", "running").tasks} == {h.id for h in handles}
    finally:
        release.set()
    assert [h.result(timeout_s=20) for h in handles] == [None] * 4


def test_a_running_worker_follows_a_change_of_k(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task(queue="hot")
    def work(i: int) -> int:
        return i

    workers.append(tq.start_worker(queues=["hot"], concurrency=4, maintenance_s=0.2))
    assert work.enqueue(-1).result(timeout_s=20) == -1  # running, unsharded
    tq.configure_queue("hot", shards=3)
    handles = [work.enqueue(i) for i in range(9)]
    assert {queue_of_task_id(h.id) for h in handles} == set(sub_queues("hot", 3))
    assert [h.result(timeout_s=20) for h in handles] == list(range(9))  # claimed from the new sub-queues
    tq.configure_queue("hot", shards=1)
    assert work.enqueue(9).result(timeout_s=20) == 9


def test_events_of_every_queue_find_a_queue_sharded_after_the_start(tq: taskq.TaskQueue) -> None:
    tq.enqueue("t", force=True, queue="cold")
    clock = [0.0]
    reader = EventReader(
        tq.ops, tq.queues(), None, follow=False, discover=True, discover_s=1, clock=lambda: clock[0],
        layout_plan=partial(layout_plan, tq.ops),
    )  # fmt: skip
    assert tq._exec.run(reader.next_plan()) == []  # where "now" is
    tq.configure_queue("hot", shards=3)
    ids = {tq.enqueue("t", force=True, queue="hot").id for _ in range(6)}
    read: list[taskq.Event] = []
    for second in range(1, 4):  # found, then its shard count read, then its sub-queues read
        clock[0] = float(second)
        for _ in range(3):
            read += tq._exec.run(reader.next_plan())
    assert {e.task_id for e in read if e.type == "enqueued"} == ids
    assert {e.queue for e in read} == {"hot"}
    assert sorted(reader.queues) == sorted(["cold", *physical_queues("hot", 3)])
