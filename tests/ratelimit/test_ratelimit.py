"""Rate limits enforced inside the claim script: parsing, the limiter, priority among the
tasks that may run, limited tasks never claimed, and 4 workers at 50/s measured from the
tasks' start times in Redis (the server's clock), not from sleeps in the test."""

from __future__ import annotations

import pytest
import redis
from apps.procs import wait_until
from helpers import server_ms

import taskq
from taskq.ratelimit import RateLimit, parse_rate, set_limits_plan
from taskq.task import TaskStatus


def test_parse_rate() -> None:
    assert parse_rate("50/s") == RateLimit(50, 1.0, 5, "gcra")
    assert parse_rate("10/m") == RateLimit(10, 60.0, 1, "gcra")
    assert parse_rate("5/10s", algorithm="token_bucket") == RateLimit(5, 10.0, 5, "token_bucket")
    assert parse_rate("100/h", burst=7).burst == 7
    assert RateLimit.from_spec(parse_rate("3/d").spec()) == parse_rate("3/d")
    for bad in ["", "50", "0/s", "5/x", "-1/s", 50, "5/0s", None]:
        with pytest.raises(taskq.InvalidOption):
            parse_rate(bad)
    with pytest.raises(taskq.InvalidOption):
        parse_rate("5/s", burst=0)


def claim_ids(tq: taskq.TaskQueue, queue: str, n: int) -> tuple[list[str], int]:
    tasks, next_ms = tq._exec.run(tq.ops.claim_batch(queue, n, 60_000, "w"))
    return [t.id for t in tasks], next_ms


@pytest.mark.parametrize("algorithm", ["gcra", "token_bucket"])
def test_a_limited_task_is_never_claimed_and_the_reply_says_when_to_look_again(
    tq: taskq.TaskQueue, rc: redis.Redis, algorithm: str
) -> None:
    tq.configure_queue("default", rate=parse_rate("2/m", burst=2, algorithm=algorithm))
    ids = [tq.enqueue("x", force=True).id for _ in range(5)]
    got, next_ms = claim_ids(tq, "default", 10)
    assert got == ids[:2]  # the burst, in queue order
    again, next_ms = claim_ids(tq, "default", 10)
    assert again == []
    now_ms = server_ms(rc)
    assert now_ms + 20_000 < next_ms <= now_ms + 30_500  # 1 per 30 s
    assert [tq.get(i).status for i in ids[2:]] == [TaskStatus.QUEUED] * 3
    assert [tq.get(i).attempts for i in ids[2:]] == [0, 0, 0]  # never claimed, never handed back
    (state,) = tq.rate_limits("default")
    assert state.limiter == "queue" and not state.open_at(now_ms)
    tq.configure_queue("default", aging_s=60)  # other settings leave the limit as it is
    assert claim_ids(tq, "default", 10)[0] == []
    tq.configure_queue("default", rate=None)  # cleared
    assert claim_ids(tq, "default", 10)[0] == ids[2:]


def test_per_task_and_per_key_limits_keep_priority_among_the_rest(tq: taskq.TaskQueue) -> None:
    @tq.task(name="per_customer", rate="1/m", rate_key=lambda customer: customer)
    def per_customer(customer: str) -> None: ...

    @tq.task(name="free")
    def free() -> None: ...

    # what a worker publishes at start (taskq.ticker), here without one
    tq._exec.run(set_limits_plan(tq.ops, "default", {"per_customer": per_customer.definition.rate}))
    a1 = per_customer.enqueue("a", priority=9).id
    a2 = per_customer.enqueue("a", priority=9).id
    b1 = per_customer.enqueue("b", priority=8).id
    low = free.enqueue(priority=1).id
    high = free.enqueue(priority=7).id
    got, _ = claim_ids(tq, "default", 10)
    assert got == [a1, b1, high, low]  # a2 waits for customer a's limit; the rest in priority order
    assert tq.get(a2).status is TaskStatus.QUEUED
    assert tq.get(a1).meta == {"taskq.rate_key": "a"}


def test_limited_tasks_do_not_block_unlimited_ones(tq: taskq.TaskQueue, workers: list[taskq.BackgroundWorker]) -> None:
    @tq.task(name="slow_lane", rate="2/s")
    def slow_lane() -> None: ...

    @tq.task(name="fast_lane")
    def fast_lane() -> None: ...

    limited = [slow_lane.enqueue().id for _ in range(200)]
    free = [fast_lane.enqueue().id for _ in range(50)]  # behind all 200, same priority
    workers.append(tq.start_worker(concurrency=8))
    wait_until(lambda: all(tq.get(i).status is TaskStatus.SUCCEEDED for i in free), 20, "the unlimited tasks")
    done = [tq.get(i) for i in limited if tq.get(i).status is TaskStatus.SUCCEEDED]
    span_s = (max(t.finished_ms or 0 for t in done) - min(t.started_ms or 0 for t in done)) / 1000
    assert len(done) <= 1 + 2 * span_s + 1  # burst 1, then 2/s


def test_four_workers_at_50_per_second_for_10_seconds(
    tq: taskq.TaskQueue, rc: redis.Redis, workers: list[taskq.BackgroundWorker]
) -> None:
    @tq.task(name="limited", rate="50/s")
    def limited() -> None: ...

    tq.enqueue_many([{"name": "limited"}] * 700)
    for _ in range(4):
        workers.append(tq.start_worker(concurrency=10))
    keys = rc.keys("taskq:{default}:t:*")

    def started_ms() -> list[int]:
        pipe = rc.pipeline(transaction=False)
        for k in keys:
            pipe.hget(k, "started_ms")
        return sorted(int(v) for v in pipe.execute() if v)

    wait_until(lambda: started_ms(), 10, "the first start")
    first = started_ms()[0]

    wait_until(lambda: server_ms(rc) > first + 10_200, 20, "ten seconds of claims")
    in_window = [t for t in started_ms() if t < first + 10_000]
    assert 475 <= len(in_window) <= 525, len(in_window)
    print(f"4 workers, rate 50/s: {len(in_window)} started in the first 10 s")
    assert tq.stats().queued > 0  # the limit, not the supply, set the pace


def test_the_snapshot_shows_schedules_and_rate_limit_state(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("default", rate="1/m")
    tq.enqueue("x", force=True)
    tq.enqueue("x", force=True)
    tq.schedule("x", every_s=60, force=True)
    assert len(claim_ids(tq, "default", 5)[0]) == 1
    snap = tq.snapshot()
    (limiter,) = snap.rate_limits["default"]
    assert limiter.limiter == "queue" and str(limiter.limit) == "1/60s burst 1 (gcra)"
    assert limiter.next_allowed_ms is not None and limiter.next_allowed_ms > snap.taken_ms + 50_000
    (info,) = snap.schedules
    assert info.name == "x" and info.next_fire_ms is not None and info.next_fire_ms % 60_000 == 0
    plain = snap.to_dict()
    assert plain["schedules"][0]["schedule"]["every_s"] == 60
    assert plain["rate_limits"]["default"][0]["limit"]["count"] == 1
