"""The hand-off (taskq/handoff.py): a task queued into an empty queue is leased, by the enqueue
script, to a worker registered idle, and sent on the worker's own channel.

What shows a task was handed off: its record's ``started_ms`` equals its ``enqueued_ms`` (one
script did both), and the queue's wake channel carried nothing for it. Against a real
redis-server; the killed-worker test uses real worker processes.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from apps.procs import Workers, wait_until

import taskq
from taskq import handoff
from taskq.keys import queue_of_task_id
from taskq.ops import Operations
from taskq.ops_base import no_result
from taskq.plan import Plan
from taskq.wake import WakeListener
from taskq.worker_ops import parse_handoff


def record(rc: redis.Redis, tq: taskq.TaskQueue, task_id: str) -> dict[str, str]:
    return rc.hgetall(tq.ops.queue_keys(queue_of_task_id(task_id)).task(task_id))  # type: ignore[return-value]


def registered(rc: redis.Redis, tq: taskq.TaskQueue, queue: str) -> list[str]:
    return rc.zrange(tq.ops.queue_keys(queue).idle, 0, -1)  # type: ignore[return-value]


def wake_messages(pubsub: Any) -> int:
    n = 0
    while (message := pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)) is not None:
        n += message["type"] == "message"
    return n


def test_an_idle_worker_is_handed_each_task(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrency 4, idle: its claim registers one member per free slot. Each task queued is
    handed off (no wake-up, no claim before it starts); the worker claims again, renewing its
    registration, only once half of it is used (at 2 members left of 4, or at 1 of 3 when the
    task handed off still held its slot at the claim): 3 claims for 6 tasks, not 6."""

    @tq.task(name="double")
    async def double(x: int) -> int:
        return 2 * x

    pubsub = rc.pubsub()
    pubsub.subscribe(tq.ops.queue_keys("default").wake)
    w = tq.start_worker(concurrency=4, idle_poll_s=30)  # no idle poll claims during the test
    workers.append(w)
    wait_until(lambda: registered(rc, tq, "default"), what="the worker registered idle")
    members = handoff.members(w.worker.lease_ms, w.worker.id)
    assert registered(rc, tq, "default") == members[:4]  # equal scores: in name order, the first first
    claims = count_claims(monkeypatch)
    wake_messages(pubsub)
    handles = []
    for i in range(6):
        handles.append(double.enqueue(i))
        assert handles[-1].result(timeout_s=10) == 2 * i
        wait_until(lambda: w.worker._claim_waiting, what="the worker idle again")  # any claim answered
    assert len(claims) == 3
    for h in handles:
        rec = record(rc, tq, h.id)
        assert rec["started_ms"] == rec["enqueued_ms"] and rec["worker"] == w.worker.id
    assert wake_messages(pubsub) == 0  # no wake-up, no claim: each was handed off
    w.stop()
    assert registered(rc, tq, "default") == []  # taken back at stop


def count_claims(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the queue of each claim the worker makes."""
    claims: list[str] = []
    real_claim = Operations.claim_batch

    def claim_batch(self: Operations, queue: str, *args: Any, **kwargs: Any) -> Any:
        claims.append(queue)
        return real_claim(self, queue, *args, **kwargs)

    monkeypatch.setattr(Operations, "claim_batch", claim_batch)  # a frozen instance: on its class
    return claims


def test_a_registration_is_one_member_per_free_slot_up_to_slots(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    """The claim script registers as many members as it asked for and did not get, no more than
    the worker asked for and handoff.SLOTS; a registration replaces the last one whole, and a
    claim that leaves the queue not empty takes every member back (those the Python side names
    are the script's: handoff.members)."""
    k = tq.ops.queue_keys("default")
    members = handoff.members(30_000, "w1")
    assert len(members) == handoff.SLOTS == len(set(members))

    def claim(max_n: int, slots: int) -> int:
        tq._exec.run(tq.ops.claim_batch("default", max_n, 30_000, "w1", register_ms=5_000, register_slots=slots))
        names: list[str] = rc.zrange(k.idle, 0, -1)  # type: ignore[assignment]
        assert names == members[: len(names)]
        return len(names)

    assert claim(100, 100) == handoff.SLOTS
    assert claim(100, 3) == 3  # the five members past these are gone
    assert claim(2, handoff.SLOTS) == 2
    published = calls(rc, "publish")
    tq.enqueue("t", force=True)  # into the empty queue: offered to nobody listening, so queued
    assert calls(rc, "publish") == published + 2  # one offer (then the queue's wake-up): all of its members went
    assert rc.zcard(k.idle) == 0
    assert claim(100, 100) == handoff.SLOTS  # claimed it, 1 of 100: the queue left empty, registered
    tq.enqueue_many([{"name": "t", "force": True}] * 3)
    assert claim(2, handoff.SLOTS) == 0  # 2 of 3: the queue holds one more, so no registration
    assert claim(100, handoff.SLOTS) == handoff.SLOTS
    tq._exec.run(Plan(handoff.unregister_commands(tq.ops, ["default"], "w1", 30_000), no_result))
    assert rc.zcard(k.idle) == 0


def calls(rc: redis.Redis, command: str) -> int:
    return int(rc.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))  # type: ignore[union-attr]


def test_each_task_takes_one_member_and_no_more_is_looked_for(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    """Tasks queued into an empty queue are handed one per member, the last member first; the
    script pops no member it has no task for, and tasks past the members stay queued, with the
    queue's wake-up. What one script hands one worker goes in one message, in FIFO order, with
    one ZPOPMAX for the members and one PUBLISH."""
    k = tq.ops.queue_keys("default")
    pubsub = rc.pubsub()
    pubsub.subscribe(handoff.channel(tq.ops, "default", "listener"))
    pubsub.get_message(timeout=1)
    tq._exec.run(tq.ops.claim_batch("default", 3, 30_000, "listener", register_ms=60_000, register_slots=3))
    members = handoff.members(30_000, "listener")
    before = calls(rc, "zpopmax"), calls(rc, "publish")
    h1 = tq.enqueue("t", force=True)
    assert h1.info().worker == "listener" and rc.zrange(k.idle, 0, -1) == members[:2]
    assert (calls(rc, "zpopmax"), calls(rc, "publish")) == (before[0] + 1, before[1] + 1)
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert message is not None and [t.id for t in parse_handoff("default", message["data"])] == [h1.id]
    rc.delete(k.idle)
    tq._exec.run(tq.ops.claim_batch("default", 4, 30_000, "listener", register_ms=60_000, register_slots=4))
    before = calls(rc, "zpopmax"), calls(rc, "publish")
    handles = tq.enqueue_many([{"name": "t", "force": True}] * 6)
    assert [h.info().worker for h in handles] == ["listener"] * 4 + [None] * 2  # in order: FIFO
    assert rc.zcard(k.idle) == 0 and rc.zcard(k.queued) == 2
    # the members popped at once (4 for 6 asked: none left), 4 tasks in one message, the wake-up
    assert (calls(rc, "zpopmax"), calls(rc, "publish")) == (before[0] + 1, before[1] + 2)
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert message is not None
    tasks = parse_handoff("default", message["data"])
    assert [t.id for t in tasks] == [h.id for h in handles[:4]]
    assert len({t.token for t in tasks}) == 4 and all(rc.hget(k.task(t.id), "token") == t.token for t in tasks)
    assert pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1) is None


def test_a_lot_is_shared_among_registrations_freshest_first_one_message_each(
    tq: taskq.TaskQueue, rc: redis.Redis
) -> None:
    """Six tasks, three registrations: "a" (the freshest, 2 members), a worker that is not
    listening (2), "b" (3). "a" gets the first two in one message; the ghost's offer reaches
    nobody, so its tasks go back and its members go; "b" gets the next three (two messages:
    the ghost came between); the sixth stays queued, with the wake-up. A lapsed registration
    takes nothing, and the ones under it went with it."""
    k = tq.ops.queue_keys("default")
    pubsub = rc.pubsub()
    pubsub.subscribe(handoff.channel(tq.ops, "default", "a"), handoff.channel(tq.ops, "default", "b"))
    for _ in range(2):
        pubsub.get_message(timeout=1)
    far = int(time.time() * 1000) + 60_000
    for worker, n, score in (("a", 2, far + 2_000), ("ghost", 2, far + 1_000), ("b", 3, far)):
        rc.zadd(k.idle, dict.fromkeys(handoff.members(30_000, worker)[:n], score))
    handles = tq.enqueue_many([{"name": "t", "force": True}] * 6)
    ids = [h.id for h in handles]
    assert [h.info().worker for h in handles] == ["a", "a", "b", "b", "b", None]
    assert rc.zcard(k.idle) == 0 and rc.zrange(k.queued, 0, -1) == ids[5:]
    got: dict[str, list[list[str]]] = {"a": [], "b": []}
    while (message := pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)) is not None:
        got[message["channel"].rsplit(":", 1)[1]].append([t.id for t in parse_handoff("default", message["data"])])
    assert got == {"a": [ids[:2]], "b": [ids[2:4], ids[4:5]]}

    rc.delete(k.queued)
    rc.zadd(k.idle, {handoff.members(30_000, "a")[0]: far, handoff.members(30_000, "b")[0]: 1})  # b's lapsed
    first, second = tq.enqueue_many([{"name": "t", "force": True}] * 2)
    assert (first.info().worker, second.info().worker) == ("a", None) and rc.zcard(k.idle) == 0


def test_registrations_on_several_queues_share_the_free_slots(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> None:
    workers.append(w := tq.start_worker(queues=["a", "b"], concurrency=6, idle_poll_s=30))
    wait_until(lambda: registered(rc, tq, "a") and registered(rc, tq, "b"), what="registered on both queues")
    members = handoff.members(w.worker.lease_ms, w.worker.id)
    assert registered(rc, tq, "a") == registered(rc, tq, "b") == members[:3]
    assert [handoff.registration_slots(free, 2) for free in (0, 1, 2, 5, 16, 100)] == [1, 1, 1, 2, 8, 8]


def test_handoff_off_by_environment(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    @tq.task(name="double")
    async def double(x: int) -> int:
        return 2 * x

    monkeypatch.setenv(handoff.ENV_SWITCH, "0")
    pubsub = rc.pubsub()
    pubsub.subscribe(tq.ops.queue_keys("default").wake)
    workers.append(w := tq.start_worker(concurrency=4))
    wait_until(lambda: w.worker._claim_waiting, what="the worker idle")
    wake_messages(pubsub)
    assert double.enqueue(3).result(timeout_s=10) == 6
    assert registered(rc, tq, "default") == []
    assert wake_messages(pubsub) == 1  # woken, then claimed


def test_a_registered_worker_with_no_subscription_gets_nothing(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    """A registration whose worker is not listening (gone, or its connection dropped) leases
    nothing: PUBLISH counted no receiver, so the task stays queued and the queue is woken."""
    k = tq.ops.queue_keys("default")
    far = int(time.time() * 1000) + 60_000
    rc.zadd(k.idle, {"30000 ghost": far})
    h = tq.enqueue("t", force=True)
    assert h.status is taskq.TaskStatus.QUEUED
    assert rc.zcard(k.idle) == 0 and rc.zcard(k.running) == 0  # the registration was used up

    # a listener that is there gets the task, leased to it
    pubsub = rc.pubsub()
    pubsub.subscribe(handoff.channel(tq.ops, "default", "listener"))
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    rc.zadd(k.idle, {"30000 listener": far})
    rc.delete(k.queued)  # empty the queue again: only an empty queue hands off
    h2 = tq.enqueue("t", args=[1, "two"], kwargs={"k": "v"}, priority=3, meta={"m": "x"}, force=True)
    info = h2.info()
    assert info.status is taskq.TaskStatus.RUNNING and info.worker == "listener" and info.attempts == 1
    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert message is not None
    (task,) = parse_handoff("default", message["data"])
    assert (task.id, task.args, task.kwargs, task.priority, task.meta, task.attempts) == (
        h2.id,
        [1, "two"],
        {"k": "v"},
        3,
        {"m": "x"},
        1,
    )
    assert rc.zscore(k.running, task.id) is not None and rc.hget(k.task(task.id), "token") == task.token


def test_a_rate_limited_queue_is_never_handed_off(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    k = tq.ops.queue_keys("default")
    tq.configure_queue("default", rate="100/s")
    pubsub = rc.pubsub()
    pubsub.subscribe(handoff.channel(tq.ops, "default", "listener"))
    pubsub.get_message(timeout=1)
    rc.zadd(k.idle, {"30000 listener": int(time.time() * 1000) + 60_000})
    h = tq.enqueue("t", force=True)
    assert h.status is taskq.TaskStatus.QUEUED
    assert rc.zcard(k.idle) == 1  # left for a queue without limits


def test_a_handoff_never_read_is_not_lost(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> None:
    """A listener that never reads its hand-off (a hung worker): the lease runs out and a real
    worker's reaper queues the task again; it runs once, to success."""
    ran: list[int] = []

    @tq.task(name="note", max_retries=3)
    def note(n: int) -> int:
        ran.append(n)
        return n

    k = tq.ops.queue_keys("default")
    pubsub = rc.pubsub()
    pubsub.subscribe(handoff.channel(tq.ops, "default", "hung"))
    pubsub.get_message(timeout=1)
    rc.zadd(k.idle, {"300 hung": int(time.time() * 1000) + 60_000})  # a 300 ms lease
    h = note.enqueue(7)
    assert h.info().worker == "hung"
    workers.append(tq.start_worker(concurrency=2, maintenance_s=0.1))
    assert h.result(timeout_s=20) == 7
    assert ran == [7] and h.info().attempts == 2


def test_a_full_worker_gives_a_handoff_back(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> None:
    """Concurrency 1 on two queues, registered on both: it is handed a task of each at once.
    It runs one and releases the other at once (no attempt spent), then claims it when the
    slot is free: never two at once."""
    state = {"now": 0, "most": 0}

    @tq.task(name="slow")
    async def slow(n: int) -> int:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        await asyncio.sleep(0.3)
        state["now"] -= 1
        return n

    w = tq.start_worker(queues=["a", "b"], concurrency=1)
    workers.append(w)
    wait_until(lambda: registered(rc, tq, "a") and registered(rc, tq, "b"), what="registered on both queues")
    ha, hb = slow.enqueue(1, queue="a"), slow.enqueue(2, queue="b")
    assert (ha.result(timeout_s=10), hb.result(timeout_s=10)) == (1, 2)
    assert state["most"] == 1
    types = [e.type for e in tq.events("b", since="0", follow=False) if e.task_id == hb.id]
    assert types == ["enqueued", "started", "released", "started", "succeeded"]  # handed off, given back
    assert hb.info().attempts == 1  # the given-back lease spent no attempt


def overtake_next_claim(
    w: taskq.BackgroundWorker, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], None]
) -> list[bool]:
    """Make the worker's next claim wait until ``meanwhile`` ran, and 0.3 s more (in which a
    hand-off it made arrives and starts), before it goes to Redis. The list gets True once
    that claim's reply came."""
    worker, done = w.worker, []
    claims: list[object] = []
    real_claim, real_run = Operations.claim_batch, worker._exec.run

    def claim_batch(self: Operations, *args: Any, **kwargs: Any) -> Any:
        plan = real_claim(self, *args, **kwargs)
        claims.append(plan)
        return plan

    async def run(plan: Any) -> Any:
        if not claims or plan is not claims[0]:
            return await real_run(plan)
        meanwhile()
        await asyncio.sleep(0.3)
        reply = await real_run(plan)
        done.append(True)
        return reply

    monkeypatch.setattr(Operations, "claim_batch", claim_batch)  # a frozen instance: on its class
    monkeypatch.setattr(worker._exec, "run", run)
    return done


def idle_worker_of_one(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> tuple[Any, list[int], taskq.BackgroundWorker]:
    """A task ``hold`` (its argument goes to the list, then it sleeps 30 s) and a worker of
    concurrency 1, idle and registered for the hand-off."""
    started: list[int] = []

    @tq.task(name="hold")
    async def hold(n: int) -> int:
        started.append(n)
        await asyncio.sleep(30)
        return n

    workers.append(w := tq.start_worker(concurrency=1, idle_poll_s=0.2))
    wait_until(lambda: registered(rc, tq, "default"), what="the worker registered idle")
    return hold, started, w


def test_a_worker_filled_while_its_claim_was_on_the_way_takes_its_registration_back(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrency 1, idle and registered. Its next claim (the idle poll) is overtaken: a task is
    handed off on the registration it holds, and starts. The claim finds the queue empty and
    registers again, but the worker is full: it takes that registration back, so the next task
    is not handed to a full worker (which would release it and start it again later: a spurious
    move in every timeline)."""
    hold, started, w = idle_worker_of_one(tq, rc, workers)
    done = overtake_next_claim(w, monkeypatch, lambda: hold.enqueue(1) and None)
    wait_until(lambda: done, what="the overtaken claim's reply")
    monkeypatch.undo()
    assert started == [1] and registered(rc, tq, "default") == []
    h2 = hold.enqueue(2)
    time.sleep(0.3)
    assert [e.type for e in tq.events(since="0", follow=False) if e.task_id == h2.id] == ["enqueued"]
    assert started == [1]


def test_a_claim_overtaken_by_a_handoff_never_exceeds_concurrency(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrency 1: the claim sent for its one free slot is overtaken by a hand-off, which
    starts; a second task, queued before the claim reaches Redis, is claimed. The worker runs
    only the first and gives the second back at once (no attempt spent)."""
    hold, started, w = idle_worker_of_one(tq, rc, workers)
    second: list[taskq.TaskHandle] = []

    def two_tasks() -> None:
        hold.enqueue(1)  # handed off
        second.append(hold.enqueue(2))  # queued: no registration left; the claim will take it

    done = overtake_next_claim(w, monkeypatch, two_tasks)
    wait_until(lambda: done, what="the overtaken claim's reply")
    monkeypatch.undo()
    (h2,) = second
    wait_until(lambda: h2.info().status is taskq.TaskStatus.QUEUED, what="the second task given back")
    time.sleep(0.3)
    assert started == [1]
    assert [e.type for e in tq.events(since="0", follow=False) if e.task_id == h2.id] == [
        "enqueued",
        "started",
        "released",
    ]
    assert h2.info().attempts == 0


def test_stop_releases_a_handed_off_task(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> None:
    started: list[int] = []

    @tq.task(name="long")
    async def long(n: int) -> int:
        started.append(n)
        await asyncio.sleep(30)
        return n

    w = tq.start_worker(concurrency=2)
    workers.append(w)
    wait_until(lambda: registered(rc, tq, "default"), what="registered")
    h = long.enqueue(1)
    wait_until(lambda: started == [1], what="the task running")
    rec = record(rc, tq, h.id)
    assert rec["started_ms"] == rec["enqueued_ms"]
    w.stop(grace_s=0)
    info = h.info()
    assert (info.status, info.attempts) == (taskq.TaskStatus.QUEUED, 0)  # given back, no attempt spent
    assert registered(rc, tq, "default") == []


def test_a_killed_worker_loses_no_handoff(tq: taskq.TaskQueue, rc: redis.Redis, tmp_path: Path) -> None:
    """A real worker process, stopped (SIGSTOP: its connection stays, so PUBLISH counts it),
    is handed a task, then SIGKILLed: the task runs once, on another worker, after the lease."""
    procs = Workers(tq.url, tmp_path)
    try:
        frozen = procs.start("--concurrency", "2", "--lease-s", "1")
        wait_until(lambda: registered(rc, tq, "default"), what="the worker registered idle")
        frozen.send_signal(signal.SIGSTOP)
        h = tq.enqueue("fault.work", [1], force=True)
        info = h.info()
        assert info.status is taskq.TaskStatus.RUNNING and info.worker and str(frozen.pid) in info.worker
        frozen.send_signal(signal.SIGKILL)
        frozen.wait(10)
        procs.start("--concurrency", "2", "--lease-s", "1")
        assert h.result(timeout_s=30) != frozen.pid
        assert rc.hgetall("runs") == {"1": "1"}  # lost 0, duplicated 0
    finally:
        procs.cleanup()


def test_stop_closes_cleanly_after_a_shard_change(
    tq: taskq.TaskQueue, workers: list[taskq.BackgroundWorker], caplog: pytest.LogCaptureFixture
) -> None:
    """Sub-queues a shard change adds have no hand-off channel (subscribed at start): the worker
    waits at stop only for the end markers of the channels it has, so it closes cleanly."""
    w = tq.start_worker(queues=["hot"], concurrency=2, maintenance_s=0.1)
    workers.append(w)
    before = list(w.worker.selection.queues)
    tq.configure_queue("hot", shards=2)
    wait_until(lambda: w.worker.selection.queues != before, what="the worker following the shard change")
    caplog.set_level("WARNING", logger="taskq.worker")
    w.stop()
    assert not [r for r in caplog.records if "not closed cleanly" in r.getMessage()]


def test_a_handed_off_task_starts_before_the_listener_reads_again(redis_url: str, rc: redis.Redis) -> None:
    """The listener lets what a message started run before it sets up its next read (redis-py's
    get_message costs tens of µs, which the task would otherwise wait out): after a message, the
    task the receiver started comes before the next read."""
    order: list[str] = []

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        started: list[asyncio.Task[None]] = []

        async def task() -> None:
            order.append("task")

        def receive(data: str) -> None:
            order.append("message")
            started.append(asyncio.get_running_loop().create_task(task()))

        listener = WakeListener(client, [], lambda: None, routes={"own": receive})
        await listener.start()
        real_next = listener._next

        async def next_message(**kwargs: Any) -> Any:
            order.append("read")
            return await real_next(**kwargs)

        listener._next = next_message  # type: ignore[method-assign]
        running = asyncio.create_task(listener.run())
        while "read" not in order:
            await asyncio.sleep(0.01)
        await client.publish("own", "x")
        while not started or not started[0].done() or order[-1] != "read":
            await asyncio.sleep(0.01)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await listener.aclose()
        await client.aclose()

    asyncio.run(main())
    assert order[order.index("message") :][:3] == ["message", "task", "read"]


def test_a_batch_handed_to_an_idle_worker_is_not_given_back(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> None:
    """One batch enqueue into the empty queue hands an idle worker of concurrency 4 a task per
    member, all 4 in one message, and queues the other 4. The worker starts each, then renews
    its registration (a claim); with one message per task that claim went out between two of
    them (the listener lets each task start before it reads on), took queued tasks for slots
    the rest had been given, and the worker gave those back. Here: 40 tasks, 40 starts, no
    release."""

    @tq.task(name="hold")
    async def hold(n: int) -> int:
        await asyncio.sleep(0.02)
        return n

    w = tq.start_worker(concurrency=4, idle_poll_s=30)
    workers.append(w)
    for _ in range(5):
        wait_until(lambda: len(registered(rc, tq, "default")) == 4, what="the worker registered idle, 4 members")
        handles = tq.enqueue_many([{"name": "hold", "args": [n]} for n in range(8)])
        assert [h.result(timeout_s=10) for h in handles] == list(range(8))
        wait_until(lambda: w.worker._claim_waiting, what="the worker idle again")
    counters = tq.stats().counters
    assert counters.get("started") == 40 and "released" not in counters
