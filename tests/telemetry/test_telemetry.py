"""Telemetry against the real redis-server: the figures must be right, not only present.

Latency percentiles are checked against the exact nearest-rank percentiles of the task
records (the same millisecond timestamps the scripts subtract), counters against the work
done, window views across a second boundary and a roll-over, worker health against a
worker process that is killed, and events against what happened, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import claim, complete, expire_leases, fail, release, server_ms, wait_until

import taskq
from taskq.scripts import _read
from taskq.telemetry import (
    COUNTERS,
    PERCENTILES,
    RELATIVE_ERROR,
    JsonLogFormatter,
    Snapshot,
    WorkerHealth,
    bucket_bounds_ms,
    bucket_of,
    bucket_value_ms,
    nearest_rank_ms,
)


def server_s(rc: redis.Redis) -> float:
    seconds, micros = rc.time()
    return seconds + micros / 1e6


def next_second(rc: redis.Redis) -> int:
    """Sleep into the next whole second of the server clock; returns that second. Window
    figures cover whole seconds that have ended, so work done before is now visible."""
    now = server_s(rc)
    time.sleep(math.floor(now) + 1.02 - now)
    return math.floor(now) + 1


# ---------------------------------------------------------------------------
# Buckets


def test_bucket_bounds_hold_their_values_and_the_midpoint_is_within_the_stated_error() -> None:
    for value in [0, 0.3, 1, 1.05, 2, 9.99, 10, 10.5, 55, 199.9, 200, 1234.5, 86_400_000]:
        low, high = bucket_bounds_ms(bucket_of(value))
        assert low <= value < high or (value < 1 and bucket_of(value) == 0)
        if value >= 1:
            assert abs(bucket_value_ms(bucket_of(value)) - value) <= RELATIVE_ERROR * value
    assert abs(RELATIVE_ERROR - 0.0488) < 1e-4


def test_lua_and_python_agree_on_buckets(rc: redis.Redis) -> None:
    probe = "local out = {}\nfor i = 1, #ARGV do out[i] = bucket_of(tonumber(ARGV[i])) end\nreturn out"
    lua = _read("lib/common.lua") + "\n" + probe
    values = [0, 0.5, 1, 2, 3, 7, 10, 11, 99, 100, 101, 999, 1000, 12_345, 10**6, 10**9, 10**12, 10**15]
    assert rc.eval(lua, 0, *values) == [bucket_of(v) for v in values]
    assert bucket_of(10**15) == 255


def test_nearest_rank_definition() -> None:
    assert nearest_rank_ms([5, 1, 3, 2, 4], 500) == 3
    assert nearest_rank_ms(list(range(1, 1001)), 999) == 999
    assert nearest_rank_ms(list(range(1, 1001)), 990) == 990
    assert nearest_rank_ms([7], 999) == 7


# ---------------------------------------------------------------------------
# Latency percentiles from a workload with known delays


def exact_latencies(tq: taskq.TaskQueue, ids: list[str]) -> dict[str, list[int]]:
    """Run, end-to-end and wait times of finished tasks, from their records (integer ms)."""
    records = [tq.redis.hgetall(tq.ops.queue_keys("default").task(i)) for i in ids]
    return {
        "run": [int(r["finished_ms"]) - int(r["started_ms"]) for r in records],
        "e2e": [int(r["finished_ms"]) - int(r["enqueued_ms"]) for r in records],
        # no delays or retries here, so each was ready when enqueued (a finished record keeps no ready_ms)
        "wait": [int(r["started_ms"]) - int(r["enqueued_ms"]) for r in records],
    }


def test_percentiles_of_a_workload_with_known_delays(tq: taskq.TaskQueue, rc: redis.Redis, workers: list) -> None:
    @tq.task
    async def sleep_ms(ms: int) -> None:
        await asyncio.sleep(ms / 1000)

    delays = [10] * 60 + [50] * 30 + [200] * 10  # known proportions: p50 10 ms, p90 50 ms, p99 200 ms
    handles = tq.enqueue_many([{"name": sleep_ms.name, "args": [ms]} for ms in delays])
    workers.append(tq.start_worker(concurrency=20))
    for h in handles:
        h.result(timeout_s=30)
    next_second(rc)
    snap = tq.snapshot("default", windows_s=(60,))
    (q,) = snap.queues
    exact = exact_latencies(tq, [h.id for h in handles])
    window = q.window(60)
    for metric, values in exact.items():
        for source in (q.latency[metric], window.latency[metric]):
            assert source.samples == len(delays)
            for name, per_mille in PERCENTILES:
                true_ms = nearest_rank_ms(values, per_mille)
                got = source.percentile_ms(name)
                assert got == bucket_value_ms(bucket_of(true_ms)), (metric, name, got, true_ms)
                if true_ms >= 1:
                    assert abs(got - true_ms) <= RELATIVE_ERROR * true_ms
    # and against the sleeps themselves: each task ran no less than its sleep (the stamps are
    # whole ms of the server's clock), so each percentile is at least its class's sleep, less
    # the bucket error. No upper bound: the worker's own time comes on top, and a stalled
    # machine adds any amount (CI once saw a 0.7 s stall put P90 at 684 ms).
    assert all(run_ms >= ms - 1 for ms, run_ms in zip(delays, exact["run"], strict=True))
    run = q.latency["run"]
    assert run.p50_ms is not None and run.p90_ms is not None and run.p99_ms is not None
    assert 10 * (1 - RELATIVE_ERROR) <= run.p50_ms <= run.p90_ms <= run.p99_ms
    assert run.p90_ms >= 50 * (1 - RELATIVE_ERROR)
    assert run.p99_ms >= 200 * (1 - RELATIVE_ERROR)
    assert window.total("succeeded") == len(delays)


def test_lifetime_latency_can_be_left_out(tq: taskq.TaskQueue) -> None:
    tq.enqueue("x", force=True)
    tq._exec.run(tq.ops.claim("default", 1, 1000, "w"))
    (q,) = tq.snapshot("default", lifetime=False, windows_s=()).queues
    assert q.latency["wait"].samples == 0 and q.windows == ()


# ---------------------------------------------------------------------------
# Counters


def test_counters_match_the_work_done(tq: taskq.TaskQueue, rc: redis.Redis, workers: list) -> None:
    attempts: Counter[int] = Counter()
    backoff = taskq.Backoff(base_s=0.01, cap_s=0.02, min_s=0.01, jitter=0)

    @tq.task(max_retries=3, backoff=backoff)
    def flaky(n: int, fail_times: int) -> int:
        attempts[n] += 1
        if attempts[n] <= fail_times:
            raise RuntimeError("not yet")
        return n

    @tq.task(max_retries=1, backoff=backoff)
    def doomed() -> None:
        raise ValueError("never")

    plan = {n: n % 3 for n in range(30)}  # 10 tasks each succeed at once, after 1, after 2 failures
    handles = [flaky.enqueue(n, fail_times) for n, fail_times in plan.items()]
    dead = [doomed.enqueue() for _ in range(4)]
    first_second = math.floor(server_s(rc))
    workers.append(tq.start_worker(concurrency=8))
    for h in handles:
        h.result(timeout_s=30)
    for h in dead:
        with pytest.raises(taskq.TaskFailed):
            h.result(timeout_s=30)
    runs = sum(attempts.values()) + 4 * 2
    failures = sum(plan.values()) + 4 * 2
    expected = {
        "enqueued": 34,
        "started": runs,
        "succeeded": 30,
        "failed": failures,
        "retried": sum(plan.values()) + 4,
        "dead": 4,
    }
    (q,) = tq.snapshot("default").queues
    assert {k: q.counters[k] for k in expected} == expected  # counters are live
    assert q.dead == 4 and q.queued == 0 and q.running == 0
    now = next_second(rc)  # latency is read up to the start of the current second
    (q,) = tq.snapshot("default", windows_s=(60, 900)).queues
    assert q.latency["run"].samples == runs  # every attempt, failed ones too
    assert q.latency["e2e"].samples == 30  # successes only
    assert q.latency["wait"].samples == runs
    if now - first_second < 59:
        assert {k: q.window(60).total(k) for k in expected} == expected
    assert {k: q.window(900).total(k) for k in expected} == expected
    assert q.window(60).span_s == 60


def test_depth_by_priority_stays_exact_through_every_path(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    for aging_s, queue in ((None, "strict"), (0.5, "aged")):
        if aging_s:
            tq.configure_queue(queue, aging_s=aging_s)
        ids = [tq.enqueue("t", queue=queue, priority=p, force=True).id for p in (1, 3, 3, 5, 7, 7, 7, 9, 10, 10)]
        tq.enqueue("t", queue=queue, priority=4, delay_s=0.001, force=True)
        tq.cancel(ids[0])
        leased = claim(tq, queue, 4)
        assert release(tq, leased[0]) == 1
        assert fail(tq, leased[1], retry_delay_ms=0)[0] == "scheduled"
        assert fail(tq, leased[2], retry_delay_ms=-1)[0] == "dead"
        expire_leases(tq, rc, queue, [leased[3].id])
        time.sleep(0.01)
        tq._exec.run(tq.ops.promote_due(queue))
        assert tq.dead_letters(queue).requeue(all=True) == 1
        tq.cancel(claim(tq, queue, 1)[0].id)  # running: only flagged
        k = tq.ops.queue_keys(queue)
        truth = Counter(int(rc.hget(k.task(i), "priority")) for i in rc.zrange(k.queued, 0, -1))
        (q,) = tq.snapshot(queue).queues
        assert dict(q.by_priority) == dict(truth), queue
        assert sum(q.by_priority.values()) == q.queued == rc.zcard(k.queued)
        assert list(q.by_priority) == sorted(q.by_priority, reverse=True)


def test_snapshot_lists_running_tasks_with_lease_ages(tq: taskq.TaskQueue) -> None:
    tq.enqueue_many([{"name": "job", "force": True, "priority": p} for p in (2, 8, 5)])
    before_ms = server_ms(tq.redis)
    leased = claim(tq, "default", 3, lease_ms=5000, worker="w-7")
    time.sleep(0.05)
    (q,) = tq.snapshot("default", running_limit=2).queues
    held_ms = server_ms(tq.redis) - before_ms  # the longest any of them can have been held
    assert q.running == 3 and q.overdue == 0 and len(q.running_tasks) == 2
    for task in q.running_tasks:
        assert task.worker == "w-7" and task.attempt == 1 and task.name == "job"
        assert task.age_ms is not None and 40 <= task.age_ms <= held_ms
        assert 5000 - held_ms <= task.lease_left_ms <= 5000
    assert {t.id for t in q.running_tasks} <= {t.id for t in leased}
    claim(tq, "default", 0)
    tq.enqueue("late", force=True)
    claim(tq, "default", 1, lease_ms=1)
    time.sleep(0.01)
    (q,) = tq.snapshot("default").queues
    assert q.overdue == 1
    assert q.running_tasks[0].lease_left_ms < 0  # soonest deadline first


def test_snapshot_of_queues_with_nothing_and_of_no_queue(tq: taskq.TaskQueue) -> None:
    assert tq.snapshot().queues == ()
    (q,) = tq.snapshot("never-used").queues
    assert q.queued == 0 and q.by_priority == {} and all(v == 0 for v in q.counters.values())
    assert set(q.counters) == set(COUNTERS)
    assert all(w.total("succeeded") == 0 and w.latency["run"].samples == 0 for w in q.windows)
    json.dumps(tq.snapshot("never-used").to_dict())


def snapshot_round_trips(tq: taskq.TaskQueue, hint: Any, queues: list[str] | None = None) -> tuple[int, Snapshot]:
    flow = tq.ops.snapshot(queues, hint=hint)
    trips, reply = 0, None
    try:
        while True:
            plan = flow.send(reply)
            trips += 1
            reply = tq._exec.run(plan)
    except StopIteration as done:
        return trips, done.value


def test_a_polling_snapshot_takes_one_round_trip(tq: taskq.TaskQueue) -> None:
    from taskq.telemetry import SnapshotHint

    tq.enqueue("t", queue="a", force=True)
    hint = SnapshotHint()
    assert snapshot_round_trips(tq, hint)[0] == 2  # the queues were not known yet
    assert snapshot_round_trips(tq, hint)[0] == 1
    assert snapshot_round_trips(tq, None, ["a", "b"])[0] == 1  # named queues, no worker
    tq.enqueue("t", queue="b", force=True)
    now_ms = int(tq.redis.time()[0]) * 1000
    tq._exec.run(tq.ops.worker_heartbeat({"id": "w9", "interval_ms": 1000}, 5, registry_ms=now_ms))
    trips, snap = snapshot_round_trips(tq, hint)  # a new queue and a new worker: read too
    assert trips == 2 and [q.queue for q in snap.queues] == ["a", "b"] and [w.id for w in snap.workers] == ["w9"]
    trips, again = snapshot_round_trips(tq, hint)
    assert trips == 1 and [q.queued for q in again.queues] == [1, 1] and again.workers[0].health is WorkerHealth.ALIVE
    tq.redis.srem("taskq:queues", "a")  # a queue the hint names that left the registry: left out
    trips, fewer = snapshot_round_trips(tq, hint)
    assert trips == 1 and [q.queue for q in fewer.queues] == ["b"]


def test_snapshot_writes_only_its_window_cache(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.enqueue("a", queue="q1", force=True)
    before = {k: rc.dump(k) for k in rc.scan_iter()}
    tq.snapshot(["q1", "q2"])
    after = {k: rc.dump(k) for k in rc.scan_iter()}
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed <= {tq.ops.queue_keys("q1").windows, tq.ops.queue_keys("q2").windows}


# ---------------------------------------------------------------------------
# Windows


def test_windows_cover_whole_past_seconds_and_roll_over(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    first = next_second(rc)
    tq.enqueue_many([{"name": "t", "force": True} for _ in range(5)])
    assert math.floor(server_s(rc)) == first, "the machine is too slow for this test's timing"
    (q,) = tq.snapshot("default", windows_s=(2, 5, 900)).queues
    assert all(w.total("enqueued") == 0 for w in q.windows)  # the current second is not in yet
    now = next_second(rc)
    assert now == first + 1
    (q,) = tq.snapshot("default", windows_s=(2, 5, 900)).queues
    assert [w.total("enqueued") for w in q.windows] == [5, 5, 5]
    assert q.window(2).rate("enqueued") == 2.5
    assert (q.window(2).start_ms, q.window(2).end_ms) == ((now - 2) * 1000, now * 1000)
    tq.enqueue("t", force=True)  # this second: not in any window yet
    time.sleep(0.01)
    (again,) = tq.snapshot("default", windows_s=(2, 5, 900)).queues
    assert again.windows == q.windows  # the same second: the same (cached) figures
    while math.floor(server_s(rc)) < first + 3:
        time.sleep(0.05)
    (q,) = tq.snapshot("default", windows_s=(2, 5, 900)).queues
    assert q.window(2).total("enqueued") == 1  # the 5 have left the 2-second window
    assert q.window(5).total("enqueued") == 6
    assert q.window(900).total("enqueued") == 6


def test_idle_seconds_reuse_nothing_stale(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    """Idle queues skip work (an empty window, the lifetime of an earlier second): the figures
    must be the ones a full computation gives, and a write must show up the second after."""

    def snap() -> Any:
        return tq.snapshot("default", windows_s=(1, 3)).queues[0]

    tq.enqueue("t", force=True)
    complete(tq, claim(tq)[0])
    first = next_second(rc)
    q = snap()
    assert q.latency["run"].samples == 1 and [w.total("succeeded") for w in q.windows] == [1, 1]
    second = next_second(rc)
    assert second == first + 1, "the machine is too slow for this test's timing"
    idle = snap()  # nothing written in [second - 1, second): the 1-s window is empty
    assert idle.latency == q.latency
    assert (idle.window(3).counts, idle.window(3).latency) == (q.window(3).counts, q.window(3).latency)
    assert (idle.window(3).start_ms, idle.window(3).end_ms) == ((second - 3) * 1000, second * 1000)
    assert idle.window(1).counts == {} and idle.window(1).run.samples == 0
    assert (idle.window(1).start_ms, idle.window(1).end_ms) == ((second - 1) * 1000, second * 1000)
    rc.delete(tq.ops.queue_keys("default").windows)  # a full computation agrees
    assert snap().windows == idle.windows and snap().latency == idle.latency
    tq.enqueue("t", force=True)
    complete(tq, claim(tq)[0])
    assert snap().latency["run"].samples == 1  # this second: not in yet
    third = next_second(rc)
    q = snap()
    assert q.latency["run"].samples == 2 and q.window(1).total("succeeded") == 1
    assert q.window(3).total("succeeded") == 2 and q.window(3).start_ms == (third - 3) * 1000


def test_a_window_reused_from_the_previous_second_drops_what_left_it(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    a = next_second(rc)
    tq.enqueue("t", force=True)
    assert next_second(rc) == a + 1, "the machine is too slow for this test's timing"
    tq.enqueue("t", force=True)
    next_second(rc)
    (q,) = tq.snapshot("default", windows_s=(2, 60)).queues
    assert [w.total("enqueued") for w in q.windows] == [2, 2]  # [a, a + 2) and [a - 58, a + 2)
    assert next_second(rc) == a + 3, "the machine is too slow for this test's timing"
    (q,) = tq.snapshot("default", windows_s=(2, 60)).queues  # no write since: 60 s reused as is
    assert [w.total("enqueued") for w in q.windows] == [1, 2]  # the task of second a left the 2-s one
    assert (q.window(2).start_ms, q.window(60).start_ms) == ((a + 1) * 1000, (a - 57) * 1000)
    rc.delete(tq.ops.queue_keys("default").windows)
    assert tq.snapshot("default", windows_s=(2, 60)).queues[0].windows == q.windows  # as computed afresh


def test_window_lengths_are_validated(tq: taskq.TaskQueue) -> None:
    for bad in [(0,), (901,), (10, 10), (1.5,)]:
        with pytest.raises(taskq.InvalidOption):
            tq.snapshot("default", windows_s=bad)  # type: ignore[arg-type]


def checkpoint(second: int, prev: int, counters: dict[str, int]) -> bytes:
    """A checkpoint member as lua/lib/common.lua writes it (no histograms)."""
    return json.dumps({"s": second, "prev": prev, "c": counters, "n": [0, 0, 0]}).encode() + b"\n"


def test_long_windows_use_the_nearest_ten_second_checkpoint(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    """Inject checkpoints at chosen seconds (the 10-s set keeps only the first of each
    period), then read the 900-s window."""
    k = tq.ops.queue_keys("default")
    tq.enqueue("t", force=True)  # creates the queue's telemetry keys
    now = next_second(rc)
    start = now - 900
    rc.delete(k.ckpt_coarse, k.windows)
    rc.hset(k.stats, mapping={"enqueued": 100})
    rc.hset(k.meta, "ckpt_s", now - 1)
    # A checkpoint right at the start, with no write between the previous one and it: exact.
    rc.zadd(k.ckpt_coarse, {checkpoint(start, start - 30, {"enqueued": 40}): start})
    (q,) = tq.snapshot("default", windows_s=(900,)).queues
    assert q.window(900).total("enqueued") == 60 and q.window(900).span_s == 900
    # Thinned around the start (writes just before the next checkpoint): the nearer one.
    rc.delete(k.ckpt_coarse, k.windows)
    rc.zadd(k.ckpt_coarse, {checkpoint(start - 8, start - 20, {"enqueued": 10}): start - 8})
    rc.zadd(k.ckpt_coarse, {checkpoint(start + 3, start + 1, {"enqueued": 30}): start + 3})
    (q,) = tq.snapshot("default", windows_s=(900,)).queues
    assert q.window(900).total("enqueued") == 70 and q.window(900).start_ms == (start + 3) * 1000
    rc.delete(k.ckpt_coarse, k.windows)
    rc.zadd(k.ckpt_coarse, {checkpoint(start - 2, start - 20, {"enqueued": 10}): start - 2})
    rc.zadd(k.ckpt_coarse, {checkpoint(start + 7, start + 1, {"enqueued": 30}): start + 7})
    (q,) = tq.snapshot("default", windows_s=(900,)).queues
    assert q.window(900).total("enqueued") == 90 and q.window(900).span_s == 902
    # Nothing written since the start: an empty window.
    rc.delete(k.ckpt_coarse, k.windows)
    rc.hset(k.meta, "ckpt_s", start - 5)
    (q,) = tq.snapshot("default", windows_s=(900,)).queues
    assert q.window(900).counts == {}


def test_checkpoints_are_pruned_and_expire(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    k = tq.ops.queue_keys("default")
    tq.enqueue("t", force=True)
    now = math.floor(server_s(rc))
    rc.zadd(k.ckpt_fine, {b"old-fine": now - 100, b"recent-fine": now - 30})
    rc.zadd(k.ckpt_coarse, {b"old-coarse": now - 1000, b"recent-coarse": now - 500})
    rc.hset(k.meta, "ckpt_s", now - 20)  # so the next checkpoint is the first of its 10-s period
    next_second(rc)
    tq.enqueue("t", force=True)  # the first write of a new second takes a checkpoint, and prunes
    assert rc.zscore(k.ckpt_fine, "old-fine") is None and rc.zscore(k.ckpt_fine, "recent-fine") is not None
    assert rc.zscore(k.ckpt_coarse, "old-coarse") is None and rc.zscore(k.ckpt_coarse, "recent-coarse") is not None
    assert 0 < rc.ttl(k.ckpt_fine) <= 75 and 0 < rc.ttl(k.ckpt_coarse) <= 960


def test_telemetry_off_keeps_counters_and_depth_only(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url, telemetry=False, events=False) as tq:
        tq.enqueue_many([{"name": "t", "force": True, "priority": 3} for _ in range(3)])
        (task,) = claim(tq, "default", 1)
        complete(tq, task)
        (q,) = tq.snapshot("default").queues
        assert q.counters["succeeded"] == 1 and q.by_priority == {3: 2}
        assert q.latency["run"].samples == 0
        k = tq.ops.queue_keys("default")
        assert not rc.exists(k.events, k.ckpt_fine, k.ckpt_coarse, *k.histograms)


# ---------------------------------------------------------------------------
# Worker health


APP = """
import asyncio, taskq
tq = taskq.TaskQueue()

@tq.task
async def hold() -> None:
    await asyncio.sleep(60)
"""


def test_a_killed_worker_turns_stale_then_gone(tq: taskq.TaskQueue, tmp_path: Path) -> None:
    (tmp_path / "healthapp.py").write_text(textwrap.dedent(APP))
    env = dict(os.environ, TASKQ_REDIS_URL=tq.url, PYTHONPATH=str(tmp_path))
    argv = [sys.executable, "-m", "taskq.cli", "worker", "healthapp:tq", "--lease-s", "0.6", "--log-level", "warning"]
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path)
    try:
        handle = tq.enqueue("healthapp.hold", force=True)

        def health() -> WorkerHealth | None:
            workers = tq.snapshot([]).workers
            return workers[0].health if workers else None

        wait_until(lambda: health() is WorkerHealth.ALIVE, what="the worker registers")
        wait_until(lambda: tq.snapshot([]).workers[0].current == (handle.id,), what="it runs the task")
        (w,) = tq.snapshot([]).workers
        assert w.pid == proc.pid and w.interval_ms == 200 and w.queues == ("default",)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: health() is WorkerHealth.STALE, what="stale")  # seen before gone: ordered states
        wait_until(lambda: health() is WorkerHealth.GONE, timeout_s=5, what="gone")
        (w,) = tq.snapshot([]).workers
        assert w.current == () and w.heartbeat_age_ms >= 1500
    finally:
        proc.kill()
        proc.wait(10)


def test_worker_health_thresholds() -> None:
    from taskq.telemetry import worker_health

    assert worker_health(True, 399, 200) is WorkerHealth.ALIVE
    assert worker_health(True, 401, 200) is WorkerHealth.STALE
    assert worker_health(False, 0, 200) is WorkerHealth.GONE


def test_live_worker_shows_alive_with_its_tasks(tq: taskq.TaskQueue, workers: list) -> None:
    started = threading.Event()

    @tq.task
    async def hold() -> None:
        started.set()
        await asyncio.sleep(30)

    handle = hold.enqueue()
    worker = tq.start_worker(lease_s=0.9, concurrency=3)
    workers.append(worker)
    assert started.wait(5)
    wait_until(lambda: tq.snapshot([]).workers[0].current == (handle.id,), what="heartbeat with the task")
    (w,) = tq.snapshot([]).workers
    assert w.id == worker.worker.id and w.concurrency == 3

    # it beats every 300 ms (a third of the lease): a snapshot soon finds it fresh and alive
    # (polled, since one stalled beat on a loaded machine is no fault of the worker's)
    def fresh() -> bool:
        (seen,) = tq.snapshot([]).workers
        return seen.health is WorkerHealth.ALIVE and seen.heartbeat_age_ms < 2 * 300 + 200

    wait_until(fresh, what="a fresh heartbeat")


def test_heartbeat_is_stamped_with_the_server_clock(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    info: dict[str, Any] = {"id": "w-clock", "interval_ms": 1000, "current": ["x"]}
    before = server_ms(rc)
    beat, started = tq._exec.run(tq.ops.worker_heartbeat(info, 5, registry_ms=0))
    after = server_ms(rc)
    assert before <= beat <= after and started == beat  # the first heartbeat's time is the start
    time.sleep(0.01)
    beat2, started2 = tq._exec.run(tq.ops.worker_heartbeat(info, 5, registry_ms=0))
    assert beat2 > beat and started2 == started  # the registered start is kept
    raw = rc.hgetall("taskq:worker:w-clock")
    assert int(raw["heartbeat_ms"]) == beat2 and int(raw["started_ms"]) == started
    assert 0 < rc.pttl("taskq:worker:w-clock") <= 5000
    restart, started3 = tq._exec.run(tq.ops.worker_heartbeat({**info, "started_ms": ""}, 5, registry_ms=0))
    assert started3 == restart > started  # a worker starting afresh under the same id
    explicit = tq._exec.run(tq.ops.worker_heartbeat({**info, "heartbeat_ms": 123, "started_ms": 100}, 5))
    assert explicit == (123, 100) and rc.zscore("taskq:workers", "w-clock") == 123
    with pytest.raises(taskq.InvalidOption):
        tq.ops.worker_heartbeat(info, 5)  # neither a registry time nor a heartbeat time


class _ClockAnHourBehind:
    """The time module as seen on a machine whose clock is an hour slow."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def time() -> float:
        return time.time() - 3600


def test_worker_health_ignores_the_worker_machine_clock(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(taskq.worker, "time", _ClockAnHourBehind())
    before = server_ms(rc)
    worker = tq.start_worker(lease_s=0.9)
    workers.append(worker)
    wait_until(lambda: len(tq.snapshot([]).workers) == 1, what="the worker registers")
    first = tq.snapshot([]).workers[0].heartbeat_ms
    wait_until(lambda: tq.snapshot([]).workers[0].heartbeat_ms > first, what="a second heartbeat")
    snap = tq.snapshot([])
    (w,) = snap.workers
    # An hour-slow clock would make the worker look an hour old: stale, with a start an hour ago.
    assert w.health is WorkerHealth.ALIVE
    assert before <= w.started_ms <= w.heartbeat_ms <= snap.taken_ms  # type: ignore[operator]
    assert w.heartbeat_age_ms == snap.taken_ms - w.heartbeat_ms
    # The registry (scored by the worker with the offset its last reply showed) is not an hour off.
    score = rc.zscore("taskq:workers", w.id)
    assert score is not None and abs(score - w.heartbeat_ms) < 600_000


# ---------------------------------------------------------------------------
# Events


def test_events_tell_a_task_lifecycle_in_order(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    a = tq.enqueue("t", priority=7, force=True).id
    b = tq.enqueue("t", priority=3, force=True).id
    (ta, tb) = claim(tq, "default", 2, worker="w-1")
    assert complete(tq, ta) == 1
    assert fail(tq, tb, retry_delay_ms=0)[0] == "scheduled"
    time.sleep(0.005)
    (tb2,) = claim(tq, "default", 1, worker="w-2")
    assert fail(tq, tb2, retry_delay_ms=-1)[0] == "dead"
    assert tq.dead_letters().requeue(all=True) == 1
    events = list(tq.events(since="0", follow=False))
    got = [(e.type, e.task_id, e.priority, e.attempt, e.worker) for e in events]
    assert got == [
        ("enqueued", a, 7, 0, None),
        ("enqueued", b, 3, 0, None),
        ("started", a, 7, 1, "w-1"),
        ("started", b, 3, 1, "w-1"),
        ("succeeded", a, 7, 1, "w-1"),
        ("retried", b, 3, 1, "w-1"),
        ("queued", b, 3, None, None),
        ("started", b, 3, 2, "w-2"),
        ("dead", b, 3, 2, "w-2"),
        ("redriven", b, 3, 0, None),
    ]
    stamps = [e.timestamp_ms for e in events]
    assert stamps == sorted(stamps) and abs(stamps[-1] / 1000 - server_s(rc)) < 5
    assert all(e.queue == "default" for e in events)


def test_events_resume_from_a_cursor_inside_a_batch(tq: taskq.TaskQueue) -> None:
    ids = [h.id for h in tq.enqueue_many([{"name": "t", "force": True} for _ in range(5)])]
    events = list(tq.events(since="0", follow=False))
    assert [e.task_id for e in events] == ids
    assert len({e.stream_id for e in events}) == 1  # one script call, one stream entry
    rest = list(tq.events(since=events[1].cursor, follow=False))
    assert [e.task_id for e in rest] == ids[2:]
    assert list(tq.events(since=events[-1].cursor, follow=False)) == []
    assert [e.task_id for e in tq.events(since=events[0].stream_id, follow=False)] == []


def test_events_from_now_follow_new_ones(tq: taskq.TaskQueue) -> None:
    tq.enqueue("before", force=True)
    seen: list[str] = []

    def produce() -> None:
        time.sleep(0.3)
        for _ in range(3):
            tq.enqueue("after", force=True)

    producer = threading.Thread(target=produce)
    producer.start()
    started = time.monotonic()
    for event in tq.events("default"):
        seen.append(event.task_id)
        if len(seen) == 3:
            break
    producer.join()
    assert time.monotonic() - started < 5
    assert len(seen) == 3


def test_event_reader_discovers_queues_created_after_it_started(tq: taskq.TaskQueue) -> None:
    from taskq.telemetry import EventReader

    old = tq.enqueue("t", queue="a", force=True).id  # before the reader started: not read
    clock = [0.0]

    def reader(since: str | None) -> EventReader:
        return EventReader(
            tq.ops, tq.queues(), since, follow=False, discover=True, discover_s=1, clock=lambda: clock[0]
        )

    fresh, from_oldest = reader(None), reader("0")
    for r in (fresh, from_oldest):
        assert tq._exec.run(r.next_plan()) == []  # learns where "now" is (and the server time)
    x = tq.enqueue("t", queue="a", force=True).id
    y = tq.enqueue("t", queue="b", force=True).id  # a queue created after the reader started
    assert [(e.queue, e.task_id) for e in tq._exec.run(fresh.next_plan())] == [("a", x)]
    assert [(e.queue, e.task_id) for e in tq._exec.run(from_oldest.next_plan())] == [("a", old), ("a", x)]
    assert fresh.queues == from_oldest.queues == ["a"]
    clock[0] = 1.0  # time to read the registry again
    for r in (fresh, from_oldest):
        assert tq._exec.run(r.next_plan()) == [] and r.queues == ["a", "b"]
        assert [(e.queue, e.task_id) for e in tq._exec.run(r.next_plan())] == [("b", y)]
        assert tq._exec.run(r.next_plan()) == []
    # Written before the registry was read again, after the reader started: not missed.
    late = tq.enqueue("t", queue="c", force=True).id
    clock[0] = 2.0
    assert tq._exec.run(fresh.next_plan()) == [] and fresh.queues == ["a", "b", "c"]
    assert [e.task_id for e in tq._exec.run(fresh.next_plan())] == [late]


@pytest.mark.parametrize("block_s", [-1, 60, "1", True, float("nan")])
def test_events_refuse_a_block_longer_than_the_socket_allows(tq: taskq.TaskQueue, block_s: object) -> None:
    # A read blocking past the connection's socket timeout would end in a TimeoutError instead.
    with pytest.raises(taskq.InvalidOption, match="block_s"):
        next(iter(tq.events(block_s=block_s)))  # type: ignore[arg-type]


def test_events_of_every_queue_follow_a_queue_created_later(tq: taskq.TaskQueue) -> None:
    tq.enqueue("t", queue="a", force=True)
    seen: list[str] = []

    def consume() -> None:
        for event in tq.events(block_s=0.2):
            if event.queue == "late":
                seen.append(event.task_id)
                return

    threading.Thread(target=consume, daemon=True).start()
    sent: list[str] = []
    wait_until(
        lambda: bool(sent.append(tq.enqueue("t", queue="late", force=True).id)) or bool(seen),
        what="a late queue's event",
    )
    assert seen[0] in sent


def test_events_of_every_queue_start_with_an_empty_registry(tq: taskq.TaskQueue) -> None:
    got: list[str] = []
    consumer = threading.Thread(target=lambda: got.extend(e.queue for e in itertools.islice(tq.events(), 1)))
    consumer.daemon = True
    consumer.start()
    wait_until(lambda: bool(tq.enqueue("t", queue="first", force=True)) and bool(got), what="the first queue's event")
    assert got == ["first"]


async def test_async_events_of_several_queues(redis_url: str) -> None:
    async with taskq.AsyncTaskQueue(redis_url) as tq:
        await tq.enqueue("old", queue="a", force=True)
        got: list[tuple[str, str]] = []

        async def consume() -> None:
            async with contextlib.aclosing(tq.events(["a", "b"], poll_s=0.02)) as events:
                async for event in events:
                    got.append((event.queue, event.type))
                    if len(got) == 4:
                        return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        await tq.enqueue("x", queue="a", force=True)
        await tq.enqueue("y", queue="b", force=True)
        await tq.enqueue("z", queue="b", force=True)
        await tq.enqueue("w", queue="a", delay_s=60, force=True)
        await asyncio.wait_for(consumer, 10)
        assert sorted(got) == [("a", "enqueued"), ("a", "scheduled"), ("b", "enqueued"), ("b", "enqueued")]
        snap = await tq.snapshot(["a", "b"])
        assert [q.queued for q in snap.queues] == [2, 2]


def test_event_sampling_keeps_whole_lives_of_one_task_in_n(redis_url: str) -> None:
    with taskq.TaskQueue(redis_url, events_sample=4) as tq:
        tq.enqueue_many([{"name": "t", "force": True, "max_retries": 0} for _ in range(800)])
        leased = claim(tq, "default", 800)
        tq._exec.run(tq.ops.finish([tq.ops.complete_command(t, "null") for t in leased[:700]]))
        for t in leased[700:]:
            fail(tq, t)
        events = list(tq.events(since="0", follow=False))
    by_type: dict[str, set[str]] = {}
    for e in events:
        by_type.setdefault(e.type, set()).add(e.task_id)
    assert 120 < len(by_type["enqueued"]) < 280  # about 800 / 4
    assert by_type["started"] == by_type["enqueued"]  # the same tasks: whole lives
    assert by_type["succeeded"] == by_type["started"] & {t.id for t in leased[:700]}
    assert len(by_type["dead"]) == 100  # failures are always kept


def test_events_off_and_the_cap(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url, events=False) as tq:
        tq.enqueue("t", force=True)
        assert not rc.exists(tq.ops.queue_keys("default").events)
        assert list(tq.events(since="0", follow=False)) == []
    with taskq.TaskQueue(redis_url, events_maxlen=200) as tq:
        for _ in range(30):
            tq.enqueue_many([{"name": "t", "force": True} for _ in range(50)])
        for _ in range(300):
            tq.enqueue("t", force=True)
        kept = list(tq.events(since="0", follow=False))
        assert len(kept) <= 4 * 200 + 100 * 50  # about the cap (trimmed by whole stream nodes)
        assert kept[-1].task_id.startswith("default:")


def test_events_and_snapshot_on_the_fakeredis_fallback(fake_server: taskq.EmbeddedServer) -> None:
    with redis.Redis.from_url(fake_server.url) as r:
        r.flushall()
    with taskq.TaskQueue(fake_server.url) as tq:
        tq.enqueue_many([{"name": "t", "force": True, "priority": p} for p in (1, 5, 5, 9)])
        (task,) = claim(tq, "default", 1, worker="w")
        time.sleep(0.02)
        complete(tq, task)
        events = list(tq.events(since="0", follow=False))
        assert [e.type for e in events] == ["enqueued"] * 4 + ["started", "succeeded"]
        with redis.Redis.from_url(fake_server.url) as fake:
            next_second(fake)
        (q,) = tq.snapshot("default").queues
        assert q.by_priority == {5: 2, 1: 1} and q.counters["succeeded"] == 1
        assert q.latency["run"].samples == 1 and q.latency["run"].p50_ms is not None
        assert q.latency["run"].p50_ms >= 20 * (1 - RELATIVE_ERROR)

        seen: list[str] = []

        def produce() -> None:
            time.sleep(0.2)
            tq.enqueue("t", force=True)

        producer = threading.Thread(target=produce)
        producer.start()
        for event in tq.events("default", block_s=0.5):
            seen.append(event.type)
            break
        producer.join()
        assert seen == ["enqueued"]

        with redis.Redis.from_url(fake_server.url, decode_responses=True) as fake:
            before = server_ms(fake)
            beat, started = tq._exec.run(tq.ops.worker_heartbeat({"id": "w", "interval_ms": 500}, 5, before))
            assert before <= beat <= server_ms(fake) and started == beat
        (w,) = tq.snapshot([]).workers
        assert w.health is WorkerHealth.ALIVE and w.heartbeat_ms == beat


# ---------------------------------------------------------------------------
# Worker logs


def test_worker_writes_json_log_lines_per_task(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task(max_retries=1, backoff=taskq.Backoff(base_s=0.01, cap_s=0.01, min_s=0.01, jitter=0))
    async def maybe(fail: bool) -> str:
        await asyncio.sleep(0.02)
        if fail:
            raise KeyError("nope")
        return "ok"

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("taskq.worker")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)  # successes are logged at DEBUG
    try:
        good = maybe.enqueue(False)
        bad = maybe.enqueue(True)
        worker = tq.start_worker(concurrency=2)
        workers.append(worker)
        assert good.result(timeout_s=10) == "ok"
        with pytest.raises(taskq.TaskFailed):
            bad.result(timeout_s=10)
        worker.stop()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    tasks = [line for line in lines if "task_id" in line]
    outcomes = sorted((line["task_id"], line["attempt"], line["outcome"]) for line in tasks)
    assert outcomes == sorted([(good.id, 1, "succeeded"), (bad.id, 1, "retrying"), (bad.id, 2, "dead")])
    for line in tasks:
        assert line["queue"] == "default" and line["worker"] == worker.worker.id and line["task"] == maybe.name
        assert line["duration_ms"] >= 15 and line["ts"].endswith("Z")
    levels = {line["outcome"]: line["level"] for line in tasks}
    assert levels == {"succeeded": "debug", "retrying": "warning", "dead": "error"}
    dead = next(line for line in tasks if line["outcome"] == "dead")
    assert dead["error_type"] == "KeyError" and "nope" in dead["message"]


def test_log_formatter_choice() -> None:
    from taskq.telemetry import log_formatter

    record = logging.LogRecord("taskq.worker", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.task_id = "q:1"
    assert json.loads(log_formatter("json").format(record))["task_id"] == "q:1"
    assert "INFO taskq.worker: hello you" in log_formatter("text").format(record)
    with pytest.raises(taskq.InvalidOption):
        log_formatter("xml")


def test_snapshot_to_dict_is_json(tq: taskq.TaskQueue) -> None:
    tq.enqueue("t", force=True)
    claim(tq, "default", 1)
    plain: dict[str, Any] = tq.snapshot().to_dict()
    text = json.dumps(plain)
    assert json.loads(text)["queues"][0]["running_tasks"][0]["worker"] == "w1"
    assert plain["queues"][0]["pending"] == 1
    assert isinstance(tq.snapshot(), Snapshot)


def test_event_reader_falls_back_to_one_read_per_queue_on_a_cluster(tq: taskq.TaskQueue) -> None:
    """A Redis Cluster refuses one XREAD over streams on different slots (CROSSSLOT): the
    reader then reads each queue on its own, polling."""
    from taskq.ops import Operations
    from taskq.plan import Plan
    from taskq.telemetry import EventReader

    class ClusterLike(Operations):
        def read_events(self, positions, count, block_ms, together):  # type: ignore[no-untyped-def]
            plan = super().read_events(positions, count, block_ms, together)
            if not together:
                return plan

            def refuse(replies: list[Any]) -> Any:
                raise redis.ResponseError("CROSSSLOT Keys in request don't hash to the same slot")

            return Plan(plan.commands, refuse, errors_inline=True)

    tq.enqueue("t", queue="a", force=True)
    tq.enqueue("t", queue="b", force=True)
    reader = EventReader(ClusterLike(), ["a", "b"], since="0", block_ms=200, poll_s=0.01)
    assert tq._exec.run(reader.next_plan()) == []
    assert reader.together is False and reader.pause_s(False, 0.0) == 0.01
    events = tq._exec.run(reader.next_plan())
    assert sorted(e.queue for e in events) == ["a", "b"]


def test_event_reader_polls_a_server_that_does_not_block(tq: taskq.TaskQueue) -> None:
    from taskq.telemetry import EventReader

    reader = EventReader(tq.ops, ["a"], since="0", block_ms=1000, poll_s=0.05)
    tq._exec.run(reader.next_plan())
    assert reader.pause_s(False, 0.001) == 0.05  # answered at once: not really blocking
    assert reader.blocking is False
    tq._exec.run(reader.next_plan())
    assert reader.pause_s(False, 0.001) == 0.05


def test_the_telemetry_benchmark_runs(redis_url: str) -> None:
    """A smoke run of benchmarks/taskq_bench/telemetry.py (the figures themselves are not asserted)."""
    from taskq_bench.telemetry import DRAIN_MODES, bench_drain, bench_scripts, bench_snapshot

    figures = bench_snapshot(redis_url, queues=2, poll_s=0.3, reps=4)
    assert figures["queues"] == 2 and figures["back_to_back"]["median_ms"] > 0
    assert figures["redis_script_us_per_queue_cold"] > 0
    assert bench_scripts(redis_url, "events on", tasks=200) > 0
    run = bench_drain(redis_url, "telemetry off", tasks=1000, concurrency=20)
    assert run.tasks == 1000 and run.per_s > 0
    assert set(DRAIN_MODES) == {"events on", "events sampled 1/10", "events off", "telemetry off"}
