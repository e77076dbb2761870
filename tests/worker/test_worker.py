"""The worker, in-process (BackgroundWorker) against the real redis-server."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import threading
import time

import pytest
import redis
from helpers import wait_until

import taskq
from taskq.backoff import backoff_bounds_s
from taskq.worker import QueueSelection, TaskContext, Worker, current_task, run_worker


def start(tq: taskq.TaskQueue, started: list[taskq.worker.BackgroundWorker], **settings: object):  # type: ignore[no-untyped-def]
    w = tq.start_worker(**settings)
    started.append(w)
    return w


def test_single_slot_worker_runs_in_priority_order(tq: taskq.TaskQueue, workers: list) -> None:
    ran: list[int] = []

    @tq.task
    def record(n: int) -> None:
        ran.append(n)

    priorities = [3, 9, 1, 9, 5, 10, 3, 1, 7, 5]
    for n, p in enumerate(priorities):
        record.enqueue(n, priority=p)
    start(tq, workers, concurrency=1)
    wait_until(lambda: len(ran) == len(priorities), what="all tasks")
    expected = [n for n, _ in sorted(enumerate(priorities), key=lambda np: (-np[1], np[0]))]
    assert ran == expected


def test_results_async_and_sync_tasks(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    @tq.task
    def mul(a: int, b: int) -> dict[str, int]:
        return {"product": a * b, "thread_is_main": int(threading.current_thread() is threading.main_thread())}

    start(tq, workers, concurrency=4)
    assert add.enqueue(2, 3).result(timeout_s=5) == 5
    assert mul.enqueue(4, b=5).result(timeout_s=5) == {"product": 20, "thread_is_main": 0}
    assert tq.stats().counters["succeeded"] == 2


def test_values_that_read_like_redis_errors_stay_values(tq: taskq.TaskQueue, workers: list) -> None:
    # reply_error once searched the text of every reply, values included, for a Cluster error
    # ("non local key"): this result read as ServerUnavailable, and every claim and completion
    # reply (one list per batch) was turned into text to be searched.
    @tq.task
    async def echo(text: str) -> str:
        return text

    start(tq, workers, concurrency=4)
    text = "ERR Error running script: non local key"
    handles = [echo.enqueue(text) for _ in range(20)]
    assert [h.result(timeout_s=10) for h in handles] == [text] * 20
    assert tq.stats().counters["succeeded"] == 20


def test_a_finished_task_is_freed_without_the_cycle_collector(tq: taskq.TaskQueue, workers: list) -> None:
    # Each task's context held a progress callback that held the task's worker record, which
    # held the context: a cycle per task, freed only by the GC (whose full collections, at
    # concurrency 100, took most of a draining worker's CPU). With the GC off, nothing of a
    # finished task may be left behind.
    @tq.task
    async def quick(n: int) -> int:
        return n

    w = start(tq, workers, concurrency=4)
    gc.collect()
    gc.disable()
    try:
        handles = [quick.enqueue(n) for n in range(20)]
        assert [h.result(timeout_s=10) for h in handles] == list(range(20))
        ids = {h.id for h in handles}
        wait_until(lambda: not ids & set(w.worker._held), what="the outcomes to be recorded")
        left = [o for o in gc.get_objects() if isinstance(o, TaskContext) and o.id in ids]
        assert left == []
    finally:
        gc.enable()


def test_run_worker_freezes_what_is_loaded_at_start(tq: taskq.TaskQueue) -> None:
    worker = Worker(tq, concurrency=1)

    def stop_once_started() -> None:
        if worker._started.wait(30):
            worker.request_stop()

    gc.unfreeze()
    stopper = threading.Thread(target=stop_once_started)
    stopper.start()
    try:
        run_worker(worker, install_signals=False, event_loop="asyncio")
        assert gc.get_freeze_count() > 0  # out of the full collections' way for good
    finally:
        stopper.join()
        gc.unfreeze()


def test_a_worker_stops_when_its_heartbeat_turns_the_cancellation_into_a_redis_error(
    tq: taskq.TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation that lands inside a Redis call can come out as ServerUnavailable, which
    the heartbeat loop logs and goes on from: the worker then never stopped (seen in CI, a
    BackgroundWorker that 'did not stop within 30s' and took later tests' tasks)."""
    original = Worker._heartbeat
    calls = 0

    async def heartbeat(self: Worker) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the one at start
            return await original(self)
        try:
            await asyncio.sleep(3600)  # a Redis call that is slow to answer
        except asyncio.CancelledError:
            raise taskq.ServerUnavailable("connection lost while cancelled") from None

    monkeypatch.setattr(Worker, "_heartbeat", heartbeat)
    worker = tq.start_worker(concurrency=1, heartbeat_s=0.05)
    try:
        wait_until(lambda: calls >= 2, what="a heartbeat in flight")
        worker.stop(grace_s=0, timeout_s=10)
    finally:
        if worker.alive:
            worker.worker.request_stop(0)  # the old code: leave no thread behind (it still hangs)
    assert not worker.alive


def test_failure_retries_with_backoff_then_dead_letter(tq: taskq.TaskQueue, workers: list) -> None:
    attempts: list[float] = []

    @tq.task(max_retries=2, backoff=taskq.Backoff(base_s=0.05, cap_s=1, min_s=0.05, jitter=0.5))
    def flaky() -> None:
        attempts.append(time.monotonic())
        raise ValueError("broken on purpose")

    handle = flaky.enqueue()
    start(tq, workers, concurrency=2)
    with pytest.raises(taskq.TaskFailed) as failed:
        handle.result(timeout_s=10)
    assert failed.value.error_type == "ValueError"
    assert "broken on purpose" in failed.value.error
    assert "Traceback" in failed.value.traceback and "flaky" in failed.value.traceback
    assert len(attempts) == 3
    for retry, (before, after) in enumerate(itertools.pairwise(attempts), start=1):
        low, _ = backoff_bounds_s(retry, 0.05, 1, 0.5, 0.05)
        assert after - before >= low * 0.9  # waited at least the backoff's lower bound
    (dead,) = tq.dead_letters().list()
    assert dead.id == handle.id and dead.attempts == 3 and dead.status is taskq.TaskStatus.DEAD
    counters = tq.stats().counters
    assert counters["failed"] == 3 and counters["retried"] == 2 and counters["dead"] == 1


def test_redrive_from_dead_letter_queue_runs_again(tq: taskq.TaskQueue, rc: redis.Redis, workers: list) -> None:
    """A re-driven task starts over: it runs again, and sheds the failure that killed it (once
    seen: `taskq task show` printed the old traceback for a task that had succeeded)."""
    fixed = threading.Event()

    @tq.task(max_retries=0)
    def needs_fix() -> str:
        if not fixed.is_set():
            raise RuntimeError("not yet")
        return "fixed"

    handle = needs_fix.enqueue()
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed):
        handle.result(timeout_s=10)
    dead = tq.get(handle.id)
    assert dead.error_type == "RuntimeError" and dead.traceback
    fixed.set()
    assert tq.dead_letters().requeue(all=True) == 1
    assert handle.result(timeout_s=10) == "fixed"
    task = tq.get(handle.id)
    assert task.status is taskq.TaskStatus.SUCCEEDED and task.attempts == 1
    assert (task.error_type, task.error, task.traceback) == (None, None, None)
    record = taskq.QueueKeys(tq.prefix, task.queue).task(handle.id)
    assert rc.exists(record) and not {"error_type", "error", "traceback"} & set(rc.hkeys(record))


def test_retry_exception_sets_the_delay(tq: taskq.TaskQueue, workers: list) -> None:
    seen: list[float] = []

    @tq.task(max_retries=3)
    def later() -> str:
        seen.append(time.monotonic())
        if len(seen) < 2:
            raise taskq.Retry(delay_s=0.3)
        return "ok"

    handle = later.enqueue()
    start(tq, workers)
    assert handle.result(timeout_s=5) == "ok"
    assert seen[1] - seen[0] >= 0.25


def test_unknown_task_name_is_retried_then_dead(tq: taskq.TaskQueue, workers: list) -> None:
    producer = taskq.TaskQueue(tq.url)
    handle = producer.enqueue("nobody.knows", max_retries=1, force=True)  # no worker has it
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed) as failed:
        tq.handle(handle.id).result(timeout_s=10)
    assert failed.value.error_type == "UnknownTaskName"
    assert tq.get(handle.id).attempts == 2  # retried (a newer worker might have known it)
    producer.close()


def test_worker_serves_the_queues_of_its_tasks_by_default(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task(queue="emails")
    def mail() -> str:
        return "mailed"

    @tq.task(queue="images")
    def resize() -> str:
        return "resized"

    worker = start(tq, workers)
    assert worker.worker.selection.queues == ("emails", "images", "default")
    assert mail.enqueue().result(timeout_s=5) == "mailed"
    assert resize.enqueue().result(timeout_s=5) == "resized"


def test_sync_timeout_counts_from_the_start_of_the_function(tq: taskq.TaskQueue, workers: list) -> None:
    release = threading.Event()

    @tq.task
    def blocker() -> None:
        release.wait(5)

    @tq.task(timeout_s=0.3, max_retries=0)
    def quick() -> str:
        context = current_task()
        assert context is not None and context.lease_token
        return "in time"

    start(tq, workers, concurrency=2, threads=1)  # one thread: quick waits for blocker
    blocker.enqueue()
    time.sleep(0.1)
    handle = quick.enqueue()
    time.sleep(0.6)  # longer than quick's timeout, all of it spent waiting for the thread
    release.set()
    assert handle.result(timeout_s=5) == "in time"


def test_result_that_is_not_json_fails_the_task(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task(max_retries=2)
    def returns_object() -> object:
        return object()

    handle = returns_object.enqueue()
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed) as failed:
        handle.result(timeout_s=5)
    assert failed.value.error_type == "NotSerializable"


def test_async_timeout_cancels_the_task(tq: taskq.TaskQueue, workers: list) -> None:
    finished = threading.Event()

    @tq.task(timeout_s=0.1, max_retries=0)
    async def slow() -> None:
        await asyncio.sleep(5)
        finished.set()

    handle = slow.enqueue()
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed) as failed:
        handle.result(timeout_s=5)
    assert failed.value.error_type == "TaskTimeout"
    assert not finished.is_set()


def test_sync_timeout_fails_the_attempt_and_ignores_the_late_result(tq: taskq.TaskQueue, workers: list) -> None:
    release = threading.Event()

    @tq.task(timeout_s=0.1, max_retries=0)
    def stuck() -> str:
        release.wait(5)
        return "late"

    handle = stuck.enqueue()
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed) as failed:
        handle.result(timeout_s=5)
    assert failed.value.error_type == "TaskTimeout"
    release.set()
    time.sleep(0.1)
    assert tq.get(handle.id).status is taskq.TaskStatus.DEAD
    assert tq.get(handle.id).result is None


def test_cancel_queued_and_scheduled_at_once(tq: taskq.TaskQueue) -> None:
    @tq.task
    def nothing() -> None:
        return None

    queued = nothing.enqueue()
    scheduled = nothing.enqueue(delay_s=60)
    assert tq.cancel(queued.id) == "cancelled"
    assert tq.cancel(scheduled.id) == "cancelled"
    for handle in (queued, scheduled):
        with pytest.raises(taskq.TaskCancelled):
            handle.result(timeout_s=1)
    with pytest.raises(taskq.NotCancellable):
        tq.cancel(queued.id)
    stats = tq.stats()
    assert stats.queued == 0 and stats.scheduled == 0


def test_cancel_running_async_task_cancels_it(tq: taskq.TaskQueue, workers: list) -> None:
    started = threading.Event()

    @tq.task
    async def forever() -> None:
        started.set()
        await asyncio.sleep(60)

    handle = forever.enqueue()
    start(tq, workers, lease_s=0.6)  # heartbeat every 0.2 s carries the abort flag
    assert started.wait(5)
    assert tq.cancel(handle.id) == "cancelling"
    with pytest.raises(taskq.TaskCancelled):
        handle.result(timeout_s=5)
    assert tq.stats().counters["cancelled"] == 1


def test_cancel_running_sync_task_sets_its_abort_flag(tq: taskq.TaskQueue, workers: list) -> None:
    started = threading.Event()

    @tq.task
    def polite() -> int:
        started.set()
        loops = 0
        context = current_task()
        assert context is not None
        while not context.aborted and loops < 500:
            time.sleep(0.01)
            loops += 1
        return loops

    handle = polite.enqueue()
    start(tq, workers, lease_s=0.6)
    assert started.wait(5)
    tq.cancel(handle.id)
    with pytest.raises(taskq.TaskCancelled):
        handle.result(timeout_s=5)
    assert tq.get(handle.id).result < 500


def test_graceful_stop_releases_running_tasks_at_once(tq: taskq.TaskQueue, workers: list) -> None:
    started = threading.Event()

    @tq.task
    async def long() -> None:
        started.set()
        await asyncio.sleep(60)

    handle = long.enqueue()
    worker = start(tq, workers, lease_s=60)
    assert started.wait(5)
    t0 = time.monotonic()
    worker.stop(grace_s=0.2)
    assert time.monotonic() - t0 < 30
    task = tq.get(handle.id)
    assert task.status is taskq.TaskStatus.QUEUED  # back at once, not after the 60 s lease
    assert task.attempts == 0  # a release spends no attempt
    assert tq.stats().counters["released"] == 1
    assert tq.workers() == []  # deregistered


def test_graceful_stop_lets_short_tasks_finish(tq: taskq.TaskQueue, workers: list) -> None:
    started = threading.Event()

    @tq.task
    def short() -> str:
        started.set()
        time.sleep(0.3)
        return "finished"

    handle = short.enqueue()
    worker = start(tq, workers)
    assert started.wait(5)
    worker.stop(grace_s=10)
    assert tq.get(handle.id).status is taskq.TaskStatus.SUCCEEDED
    assert handle.result(timeout_s=0) == "finished"


def test_worker_never_claims_from_a_queue_it_was_not_given(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task
    def where() -> str:
        context = current_task()
        assert context is not None
        return context.queue

    emails = [where.enqueue(queue="emails") for _ in range(5)]
    images = [where.enqueue(queue="images") for _ in range(5)]
    start(tq, workers, queues=["emails"])
    assert [h.result(timeout_s=5) for h in emails] == ["emails"] * 5
    time.sleep(0.3)
    assert all(tq.get(h.id).status is taskq.TaskStatus.QUEUED for h in images)
    assert tq.stats("images").queued == 5


def test_ordered_affinity_drains_the_first_queue_first(tq: taskq.TaskQueue, workers: list) -> None:
    ran: list[str] = []

    @tq.task
    def note(label: str) -> None:
        ran.append(label)

    for _ in range(10):
        note.enqueue("low", queue="low")
        note.enqueue("high", queue="high")
    start(tq, workers, queues="high,low", concurrency=1)
    wait_until(lambda: len(ran) == 20)
    assert ran == ["high"] * 10 + ["low"] * 10


def test_weighted_queues_share_claims_by_weight(tq: taskq.TaskQueue, workers: list) -> None:
    ran: list[str] = []

    @tq.task
    def note(label: str) -> None:
        ran.append(label)

    tq.enqueue_many([{"name": note.name, "args": ["a"], "queue": "a"} for _ in range(300)])
    tq.enqueue_many([{"name": note.name, "args": ["b"], "queue": "b"} for _ in range(300)])
    start(tq, workers, queues="a=3,b=1", concurrency=1)
    wait_until(lambda: len(ran) >= 200, what="200 tasks")
    first = ran[:200]
    share_a = first.count("a") / len(first)
    assert 0.6 < share_a < 0.9  # about 3/4; both queues are served


def test_queue_selection_parsing() -> None:
    assert QueueSelection.parse("emails,default").queues == ("emails", "default")
    weighted = QueueSelection.parse("emails=3,default=1")
    assert weighted.weights == (3, 1)
    for bad in ("", "a,a", "a=0", "a=x", "bad{name}"):
        with pytest.raises(taskq.ValidationError):
            QueueSelection.parse(bad)


def test_idle_worker_wakes_for_new_work_quickly(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task
    def ping() -> str:
        return "pong"

    start(tq, workers, idle_poll_s=30)  # only the pub/sub wake-up can start these promptly
    time.sleep(0.2)  # the worker is idle now
    for _ in range(3):
        assert ping.enqueue().result(timeout_s=5) == "pong"


def test_delayed_task_starts_when_due_without_polling(tq: taskq.TaskQueue, workers: list) -> None:
    @tq.task
    def stamp() -> float:
        return time.time()

    start(tq, workers, idle_poll_s=30, maintenance_s=30)
    time.sleep(0.2)
    t0 = time.time()
    handle = stamp.enqueue(delay_s=0.4)
    ran_at = handle.result(timeout_s=10)
    assert ran_at - t0 >= 0.35
    assert ran_at - t0 < 10  # woken by its due time, not the 30 s idle poll


def test_worker_registry_heartbeat_and_expiry(tq: taskq.TaskQueue, rc: redis.Redis, workers: list) -> None:
    started = threading.Event()

    @tq.task
    async def hold() -> None:
        started.set()
        await asyncio.sleep(60)

    handle = hold.enqueue()
    worker = start(tq, workers, lease_s=0.9, concurrency=3, queues=["default"])
    assert started.wait(5)
    wait_until(lambda: any(w.current == (handle.id,) for w in tq.workers()), what="registry shows the task")
    (info,) = tq.workers()
    assert info.id == worker.worker.id and info.concurrency == 3 and info.queues == ("default",)
    assert info.pid and info.pid > 0 and info.host and info.health is taskq.WorkerHealth.ALIVE
    ttl_ms = rc.pttl(f"taskq:worker:{info.id}")
    assert 0 < ttl_ms <= 2000


def test_stale_lease_cannot_complete_after_requeue(tq: taskq.TaskQueue) -> None:
    tq.enqueue("job", force=True)
    (first,) = tq._exec.run(tq.ops.claim("default", 1, 1, "slow-worker"))
    time.sleep(0.01)
    assert tq._exec.run(tq.ops.requeue_expired("default")) == (1, 0)
    (second,) = tq._exec.run(tq.ops.claim("default", 1, 30_000, "fast-worker"))
    assert second.id == first.id and second.token != first.token and second.attempts == 2
    (stale,) = tq._exec.run(tq.ops.finish([tq.ops.complete_command(first, '"stale"')]))
    assert isinstance(stale, taskq.LeaseLost)
    assert tq._exec.run(tq.ops.finish([tq.ops.complete_command(second, '"fresh"')])) == [1]
    assert tq.get(first.id).result == "fresh"


def test_worker_drops_a_task_whose_lease_was_lost(tq: taskq.TaskQueue, rc: redis.Redis, workers: list) -> None:
    started = threading.Event()

    @tq.task(max_retries=3)
    async def hold() -> str:
        started.set()
        await asyncio.sleep(2)
        return "done"

    handle = hold.enqueue()
    start(tq, workers, lease_s=0.6)
    assert started.wait(5)
    rc.hset(f"taskq:{{default}}:t:{handle.id}", "token", "stolen")  # as if requeued and re-claimed
    wait_until(lambda: not tq.workers()[0].current, what="worker dropped the task")
    assert tq.get(handle.id).status is taskq.TaskStatus.RUNNING  # it did not finish someone else's attempt


def test_exactly_once_with_several_workers(tq: taskq.TaskQueue, rc: redis.Redis, workers: list) -> None:
    runs = redis.Redis.from_url(tq.url)

    @tq.task
    async def count(n: int) -> None:
        runs.hincrby("runs", str(n), 1)

    total = 600
    tq.enqueue_many([{"name": count.name, "args": [n]} for n in range(total)])
    for _ in range(3):
        start(tq, workers, concurrency=8)
    wait_until(lambda: tq.stats().counters.get("succeeded", 0) == total, timeout_s=30, what="all tasks")
    counts = {int(k): int(v) for k, v in rc.hgetall("runs").items()}
    assert len(counts) == total and set(counts.values()) == {1}
    runs.close()


def test_worker_settings_are_validated(tq: taskq.TaskQueue) -> None:
    with pytest.raises(taskq.InvalidOption):
        Worker(tq, concurrency=0)
    with pytest.raises(taskq.InvalidOption):
        Worker(tq, lease_s=0)
    with pytest.raises(taskq.InvalidQueueName):
        Worker(tq, queues=["bad name"])


def test_failure_log_says_how_long_it_ran_and_what_the_script_decided(
    tq: taskq.TaskQueue, workers: list, caplog: pytest.LogCaptureFixture
) -> None:
    @tq.task(max_retries=1, backoff=taskq.Backoff(base_s=0.25, min_s=0.25, cap_s=0.25, jitter=0))
    def always_fails() -> None:
        raise ValueError("boom")

    @tq.task(max_retries=3)
    def unserializable() -> object:
        return {1, 2}

    caplog.set_level(logging.WARNING, logger="taskq.worker")
    handle = always_fails.enqueue()
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed):
        handle.result(timeout_s=10)
    wait_until(
        lambda: len([r for r in caplog.records if getattr(r, "task_id", None) == handle.id]) == 2,
        what="both log records",
    )
    first, second = (r.getMessage() for r in caplog.records if getattr(r, "task_id", None) == handle.id)
    assert "attempt 1 failed, ran for " in first and " ms; retry 1 of 1 in 0.25 s: ValueError: boom" in first
    assert "attempt 2 failed, ran for " in second and "; dead (no retries left): ValueError: boom" in second
    other = unserializable.enqueue()
    with pytest.raises(taskq.TaskFailed):
        other.result(timeout_s=10)
    wait_until(lambda: any(getattr(r, "task_id", None) == other.id for r in caplog.records), what="the log record")
    (record,) = (r.getMessage() for r in caplog.records if getattr(r, "task_id", None) == other.id)
    assert "attempt 1 failed, ran for " in record and "; dead (not retryable): NotSerializable" in record
