"""Schedules in Redis: stored once for every client, each fire time enqueued exactly once
however many tickers race, misfire policies, and real worker processes (killed mid-run).
Runs are counted from the task records' fire times in Redis, not from the wall clock."""

from __future__ import annotations

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.procs import Workers, wait_until
from helpers import server_ms

import taskq
from taskq.schedules import Schedule

APP = "tests.schedules.schedapp:tq"


def fire_times(rc: redis.Redis, queue: str, schedule: str) -> list[int]:
    """The fire time of every task record a schedule enqueued (duplicates kept)."""
    import json

    out = []
    for key in rc.scan_iter(match=f"taskq:{{{queue}}}:t:*", count=1000):
        meta = rc.hget(key, "meta")
        if meta:
            labels = json.loads(str(meta))
            if labels.get("schedule") == schedule:
                out.append(int(labels["fire_ms"]))
    return sorted(out)


def set_last_fire(tq: taskq.TaskQueue, rc: redis.Redis, queue: str, name: str, last_ms: int) -> None:
    rc.hset(tq.ops.queue_keys(queue).schedules, name, f"{last_ms} - 0")


def test_a_schedule_is_stored_in_redis_for_every_client(tq: taskq.TaskQueue, redis_url: str) -> None:
    s = tq.schedule("report", cron="*/5 * * * *", timezone="Europe/Paris", args=[1], force=True, queue="reports")
    assert s.name == "report"
    with taskq.TaskQueue(redis_url) as other:
        (info,) = other.schedules()
    assert info.schedule == s
    assert info.last_task_id is None
    assert info.next_fire_ms is not None and info.next_fire_ms % 300_000 == 0
    other_tq = taskq.TaskQueue(redis_url)
    other_tq.pause_schedule("report")
    assert tq.schedules()[0].schedule.paused and tq.schedules()[0].next_fire_ms is None
    other_tq.pause_schedule("report", paused=False)
    tq.unschedule("report")
    assert tq.schedules() == []
    with pytest.raises(taskq.TaskNotFound):
        tq.unschedule("report")
    other_tq.close()


def test_bad_schedules_write_nothing(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    bad = [
        {"cron": "not cron"},
        {"cron": "* * * * *", "every_s": 5},
        {},
        {"every_s": 0},
        {"every_s": 5, "timezone": "Nowhere/Here"},
        {"every_s": 5, "misfire": "sometimes"},
        {"every_s": 5, "priority": 11},
    ]
    for options in bad:
        with pytest.raises(taskq.TaskqError):
            tq.schedule("t", force=True, **options)  # type: ignore[arg-type]
    with pytest.raises(taskq.UnknownTaskName):
        tq.schedule("nobody_has_this", every_s=5)
    assert rc.keys("*") == []


def test_many_tickers_enqueue_each_fire_time_once(tq: taskq.TaskQueue, rc: redis.Redis, redis_url: str) -> None:
    tq.schedule("t", every_s=1, force=True, queue="race", misfire="all", grace_s=60)
    set_last_fire(tq, rc, "race", "t", server_ms(rc) - 30_000)  # 30 fire times due
    clients = [taskq.TaskQueue(redis_url) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    totals: list[int] = []

    def tick(c: taskq.TaskQueue) -> None:
        barrier.wait()
        for _ in range(5):
            totals.append(c.tick_schedules().enqueued)

    threads = [threading.Thread(target=tick, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    fires = fire_times(rc, "race", "t")
    assert len(fires) == len(set(fires)) == sum(totals)
    assert 30 <= len(fires) <= 36  # the 30 due, and those that came due while ticking
    assert fires == list(range(fires[0], fires[-1] + 1, 1000))  # no gap
    for c in clients:
        c.close()


@pytest.mark.parametrize(("misfire", "runs"), [("all", 10), ("once", 1), ("skip", 0)])
def test_misfire_policy_after_every_worker_was_down(
    tq: taskq.TaskQueue, rc: redis.Redis, misfire: str, runs: int
) -> None:
    tq.schedule("t", every_s=1, force=True, misfire=misfire, grace_s=0, max_missed=10)
    before_ms = server_ms(rc)
    set_last_fire(tq, rc, "default", "t", before_ms - 60_000)  # down for a minute
    assert tq.tick_schedules().enqueued == runs
    (info,) = tq.schedules()
    # the latest fire time that came due: within one period of the tick, whatever the policy
    assert info.last_fire_ms is not None and before_ms - 1_000 < info.last_fire_ms <= server_ms(rc)
    assert tq.stats().queued == runs


def test_a_new_schedule_starts_now_and_a_decorated_task_is_scheduled_by_its_worker(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> None:
    @tq.task(name="beat", schedule=0.2)
    def beat() -> None: ...

    workers.append(tq.start_worker(concurrency=2))
    wait_until(lambda: len(fire_times(rc, "default", "beat")) >= 3, timeout_s=20, what="three beats")
    (info,) = tq.schedules()
    assert isinstance(info.schedule, Schedule) and info.schedule.every_s == 0.2
    assert info.last_task_id is not None
    fires = fire_times(rc, "default", "beat")
    assert fires == list(range(fires[0], fires[-1] + 1, 200))[: len(fires)]


@pytest.fixture
def procs(redis_url: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(redis_url, tmp_path)
    yield started
    started.cleanup()


def test_five_worker_processes_give_one_run_per_second_even_when_killed(
    tq: taskq.TaskQueue, rc: redis.Redis, procs: Workers
) -> None:
    """5 workers, a 1-second schedule, 20 s: exactly 20 runs. Two workers are SIGKILLed
    mid-run along the way (one is replaced): still no double and no gap."""
    started = [procs.start("--concurrency", "2", app=APP, wait_ready=False) for _ in range(5)]
    for proc in started:
        wait_until(lambda p=proc: "serving" in procs.log(p) or p.poll() is not None, 60, "a worker to start")  # type: ignore[misc]
        assert proc.poll() is None, procs.log(proc)
    tq.schedule("sched_tick", every_s=1, misfire="all", force=True)
    first = wait_first_fire(rc)
    end = first + 20_000
    wait_until(lambda: server_ms(rc) > first + 7_300, 30, "7 s of runs")
    started[0].send_signal(signal.SIGKILL)
    started.append(procs.start("--concurrency", "2", app=APP))
    wait_until(lambda: server_ms(rc) > first + 13_600, 30, "13 s of runs")
    started[1].send_signal(signal.SIGKILL)
    wait_until(lambda: server_ms(rc) > end + 500, 30, "20 s of runs")
    tq.pause_schedule("sched_tick")
    fires = [f for f in fire_times(rc, "sched", "sched_tick") if first <= f < end]
    assert Counter(fires).most_common(1)[0][1] == 1, "a fire time was enqueued twice"
    assert fires == list(range(first, end, 1000))  # exactly 20, no gap


def wait_first_fire(rc: redis.Redis) -> int:
    found: list[int] = []

    def fired() -> bool:
        found[:] = fire_times(rc, "sched", "sched_tick")
        return bool(found)

    wait_until(fired, 30, "the first fire")
    return found[0]


async def test_the_async_client_has_the_same_schedule_methods(redis_url: str, rc: redis.Redis) -> None:
    aq = taskq.AsyncTaskQueue(redis_url)
    try:
        s = await aq.schedule("t", every_s=1, force=True, misfire="all", grace_s=0, max_missed=3)
        set_last_fire(aq, rc, "default", "t", server_ms(rc) - 10_000)  # type: ignore[arg-type]
        assert (await aq.tick_schedules()).enqueued == 3
        (info,) = await aq.schedules()
        assert info.schedule == s and info.last_task_id is not None
        await aq.pause_schedule("t")
        await aq.configure_queue("default", rate="3/s")
        assert [str(x.limit) for x in await aq.rate_limits("default")] == ["3/1s burst 1 (gcra)"]
        await aq.unschedule("t")
        assert await aq.schedules() == []
    finally:
        await aq.aclose()


def test_a_broken_definition_does_not_stop_the_others(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.schedule("good", every_s=1, force=True, misfire="all", grace_s=60)
    rc.hset(tq.ops.keys.schedules, "bad", '{"name": "bad", "task": "t", "queue": "default", "cron": "nope"}')
    rc.hset(tq.ops.keys.schedules, "worse", "not json")
    set_last_fire(tq, rc, "default", "good", server_ms(rc) - 3_000)
    assert tq.tick_schedules().enqueued >= 3
    assert [i.name for i in tq.schedules()] == ["good"]
    assert [i.name for i in tq.snapshot().schedules] == ["good"]
