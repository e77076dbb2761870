"""A model-based test of the task life cycle (DESIGN.md, "Task states").

Hypothesis drives random sequences of producer and worker operations against one real
Redis, and a plain-Python model predicts where every task must be. After every step the
invariant checks each task is in exactly one place (one sorted set, or finished with its
status and in none), that its record agrees, and that no sorted set holds anything else.
Nothing may be lost, nothing may be in two places, and a stale lease token never wins.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest
from helpers import LONG_LEASE_MS, wait_ms
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import taskq
from taskq.connection import sync_client
from taskq.ops import ClaimedTask

QUEUE = "sm"
ZSET_PLACES = ("queued", "scheduled", "running", "dead")
IDEMPOTENCY_KEYS = ("k0", "k1", "k2")


@dataclass
class Expected:
    """What the model believes about one task."""

    id: str
    priority: int
    max_retries: int
    place: str = "queued"  # a ZSET_PLACES entry, or succeeded / cancelled / purged
    seq: int = 0  # order of becoming ready; equal numbers were made ready together (order unknown)
    due: bool = False  # scheduled and already due
    attempts: int = 0
    lease: ClaimedTask | None = None
    short_lease: bool = False  # claimed with a 1 ms lease that was never extended
    cancel_requested: bool = False

    def before(self, other: Expected) -> bool:
        """True if this task must be claimed before ``other`` (strict priority, then FIFO)."""
        if self.priority != other.priority:
            return self.priority > other.priority
        return self.seq < other.seq


class TaskLifecycle(RuleBasedStateMachine):
    url: str = ""  # set by the test function below

    def __init__(self) -> None:
        super().__init__()
        self.rc = sync_client(self.url)  # RedisCluster for the conformance run's cluster URL
        self.rc.flushall()
        self.tq = taskq.TaskQueue(self.url)
        self.keys = self.tq.ops.queue_keys(QUEUE)
        self.tasks: dict[str, Expected] = {}
        self.idem: dict[str, str] = {}
        self.stale: list[ClaimedTask] = []
        self.seq = 0
        self.created = 0

    def teardown(self) -> None:
        self.tq.close()
        self.rc.close()

    # -- helpers ----------------------------------------------------------------------

    def in_place(self, *places: str) -> list[Expected]:
        return [t for t in self.tasks.values() if t.place in places]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def make_ready(self, tasks: list[Expected], together: bool) -> None:
        """Tasks entering `queued` get new places in line; ``together`` = in one unknown order."""
        batch = self.next_seq() if together else 0
        for t in tasks:
            t.place, t.due = "queued", False
            t.seq = batch or self.next_seq()

    def promote_due(self) -> list[Expected]:
        due = [t for t in self.in_place("scheduled") if t.due]
        self.make_ready(due, together=True)
        return due

    def lose_lease(self, t: Expected) -> None:
        assert t.lease is not None
        self.stale = [*self.stale[-9:], t.lease]
        t.lease, t.short_lease = None, False

    def run(self, plan: Any) -> Any:
        return self.tq._exec.run(plan)

    def pick(self, data: st.DataObject, *places: str) -> Expected:
        return self.tasks[data.draw(st.sampled_from(sorted(t.id for t in self.in_place(*places))))]

    def has(self, *places: str) -> bool:
        return bool(self.in_place(*places))

    # -- producer rules ---------------------------------------------------------------

    @rule(
        priority=st.integers(1, 10),
        delay=st.sampled_from(["none", "none", "none", "tiny", "long"]),
        idem=st.sampled_from([None, None, *IDEMPOTENCY_KEYS]),
        max_retries=st.sampled_from([0, 1, 1, 2]),
    )
    def enqueue(self, priority: int, delay: str, idem: str | None, max_retries: int) -> None:
        delay_s = {"none": 0.0, "tiny": 0.001, "long": 3600.0}[delay]
        task_id = self.tq.enqueue(
            "job",
            queue=QUEUE,
            priority=priority,
            delay_s=delay_s,
            idempotency_key=idem,
            max_retries=max_retries,
            force=True,
        ).id
        if idem is not None and idem in self.idem:
            assert task_id == self.idem[idem], "an idempotency key must return the first task's id"
            return
        assert task_id not in self.tasks
        self.created += 1
        t = Expected(task_id, priority, max_retries)
        self.tasks[task_id] = t
        if idem is not None:
            self.idem[idem] = task_id
        if delay == "none":
            self.make_ready([t], together=False)
        else:
            t.place = "scheduled"
            if delay == "tiny":
                wait_ms(3)  # the server clock passes the 1 ms due time
                t.due = True

    @precondition(lambda self: self.has(*ZSET_PLACES, "succeeded", "cancelled", "purged"))
    @rule(data=st.data(), now=st.integers(0, 2))
    def cancel(self, data: st.DataObject, now: int) -> None:
        if now:  # cancel is enabled at almost every step: run it a third as often, so tasks live on
            return
        t = self.pick(data, *ZSET_PLACES, "succeeded", "cancelled", "purged")
        if t.place in ("queued", "scheduled"):
            assert self.tq.cancel(t.id) == "cancelled"
            t.place, t.due = "cancelled", False
        elif t.place == "running":
            assert self.tq.cancel(t.id) == "cancelling"
            t.cancel_requested = True
        elif t.place == "purged":
            with pytest.raises(taskq.TaskNotFound):
                self.tq.cancel(t.id)
        else:
            with pytest.raises(taskq.NotCancellable):
                self.tq.cancel(t.id)

    @precondition(lambda self: self.has("dead"))
    @rule(data=st.data(), every=st.booleans())
    def redrive(self, data: st.DataObject, every: bool) -> None:
        dlq = self.tq.dead_letters(QUEUE)
        if every:
            chosen = self.in_place("dead")
            assert dlq.requeue(all=True) == len(chosen)
            together = True
        else:
            ids = data.draw(st.lists(st.sampled_from(sorted(t.id for t in self.in_place("dead"))), unique=True))
            chosen = [self.tasks[i] for i in ids]
            assert dlq.requeue(ids) == len(chosen)
            together = False  # re-driven in the order given
        for t in chosen:
            t.attempts, t.cancel_requested = 0, False
        self.make_ready(chosen, together=together)

    @precondition(lambda self: self.has("dead"))
    @rule(data=st.data())
    def purge(self, data: st.DataObject) -> None:
        t = self.pick(data, "dead")
        assert self.tq.dead_letters(QUEUE).purge([t.id]) == 1
        t.place = "purged"
        self.idem = {k: v for k, v in self.idem.items() if v != t.id}  # the key is free again

    # -- worker rules -----------------------------------------------------------------

    @rule(n=st.integers(1, 3), short=st.booleans())
    def claim(self, n: int, short: bool) -> None:
        lease_ms = 1 if short else LONG_LEASE_MS
        claimed = self.run(self.tq.ops.claim(QUEUE, n, lease_ms, "w1"))
        self.promote_due()  # claim promotes due tasks first
        candidates = self.in_place("queued")
        got = [self.tasks[c.id] for c in claimed]
        assert len({t.id for t in got}) == len(got) == min(n, len(candidates))
        assert all(t.place == "queued" for t in got), "claimed a task that was not waiting"
        rest = [t for t in candidates if t not in got]
        for c in got:
            assert not any(u.before(c) for u in rest), f"{c} claimed before a task that comes first"
        for a, b in pairwise(got):
            assert not b.before(a), "a batch must come out in claim order"
        for lease, t in zip(claimed, got, strict=True):
            t.place, t.attempts, t.lease, t.short_lease = "running", t.attempts + 1, lease, short
            assert lease.attempts == t.attempts
            assert lease.priority == t.priority

    @precondition(lambda self: self.has("running"))
    @rule(data=st.data(), as_cancelled=st.booleans())
    def complete(self, data: st.DataObject, as_cancelled: bool) -> None:
        t = self.pick(data, "running")
        assert t.lease is not None
        outcome = "cancelled" if as_cancelled and t.cancel_requested else "succeeded"
        reply = self.run(self.tq.ops.finish([self.tq.ops.complete_command(t.lease, '"ok"', outcome)]))
        assert reply == [1]
        self.lose_lease(t)
        t.place = outcome

    @precondition(lambda self: self.has("running"))
    @rule(data=st.data(), retry_delay_ms=st.sampled_from([0, 0, -1]))
    def fail(self, data: st.DataObject, retry_delay_ms: int) -> None:
        t = self.pick(data, "running")
        assert t.lease is not None
        cmd = self.tq.ops.fail_command(t.lease, "ValueError", "boom", "tb", retry_delay_ms)
        (reply,) = self.run(self.tq.ops.finish([cmd]))
        self.lose_lease(t)
        if retry_delay_ms >= 0 and t.attempts <= t.max_retries:
            assert reply[0] == "scheduled"
            t.place, t.due = "scheduled", True  # a 0 ms delay is due at once
        else:
            assert reply[0] == "dead"
            t.place, t.cancel_requested = "dead", False

    @precondition(lambda self: self.has("running"))
    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        t = self.pick(data, "running")
        assert t.lease is not None
        (reply,) = self.run(self.tq.ops.extend(QUEUE, [(t.id, t.lease.token)], LONG_LEASE_MS))
        assert reply == (2 if t.cancel_requested else 1)
        t.short_lease = False

    @precondition(lambda self: self.has("running"))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        t = self.pick(data, "running")
        assert t.lease is not None
        assert self.run(self.tq.ops.release(QUEUE, [(t.id, t.lease.token)])) == 1
        self.lose_lease(t)
        t.place, t.attempts = "queued", t.attempts - 1  # keeps its place in line (seq)

    @precondition(lambda self: self.has("running"))
    @rule(data=st.data(), force=st.booleans())
    def expire_leases(self, data: st.DataObject, force: bool) -> None:
        """The reaper: overdue leases (1 ms ones, or one forced to score 0) are requeued or dead."""
        if force:
            victim = self.pick(data, "running")
            assert self.rc.zadd(self.keys.running, {victim.id: 0}, xx=True, ch=True) == 1
            victim.short_lease = True
        expired = [t for t in self.in_place("running") if t.short_lease]
        if expired:
            wait_ms(3)
        requeued, dead = self.run(self.tq.ops.requeue_expired(QUEUE))
        want_dead = [t for t in expired if t.attempts > t.max_retries]
        assert (requeued, dead) == (len(expired) - len(want_dead), len(want_dead))
        for t in expired:
            self.lose_lease(t)
            t.place = "dead" if t in want_dead else "queued"  # requeued in its old place
            if t.place == "dead":
                t.cancel_requested = False

    @precondition(lambda self: self.has("scheduled"))
    @rule(data=st.data(), make_due=st.booleans())
    def time_passes(self, data: st.DataObject, make_due: bool) -> None:
        """Maybe a long delay runs out (its due time moved to the past); then the promoter runs."""
        waiting = sorted(t.id for t in self.in_place("scheduled") if not t.due)
        if make_due and waiting:
            t = self.tasks[data.draw(st.sampled_from(waiting))]
            assert self.rc.zadd(self.keys.scheduled, {t.id: 0}, xx=True, ch=True) == 1
            t.due = True
        promoted, next_due = self.run(self.tq.ops.promote_due(QUEUE))
        assert promoted == len(self.promote_due())
        assert (next_due == -1) == (not self.has("scheduled"))

    # -- a slow old worker ------------------------------------------------------------

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data(), action=st.sampled_from(["complete", "fail", "extend", "release"]))
    def stale_lease_is_refused(self, data: st.DataObject, action: str) -> None:
        lease = data.draw(st.sampled_from(self.stale))
        ops = self.tq.ops
        if action == "complete":
            (reply,) = self.run(ops.finish([ops.complete_command(lease, '"late"')]))
            assert isinstance(reply, taskq.LeaseLost)
        elif action == "fail":
            (reply,) = self.run(ops.finish([ops.fail_command(lease, "E", "late", "", 0)]))
            assert isinstance(reply, taskq.LeaseLost)
        elif action == "extend":
            assert self.run(ops.extend(QUEUE, [(lease.id, lease.token)], LONG_LEASE_MS)) == [0]
        else:
            assert self.run(ops.release(QUEUE, [(lease.id, lease.token)])) == 0

    # -- the invariant ----------------------------------------------------------------

    @invariant()
    def every_task_is_in_exactly_one_place(self) -> None:
        ids = sorted(self.tasks)
        pipe = self.rc.pipeline(transaction=False)
        for place in ZSET_PLACES:
            pipe.zcard(getattr(self.keys, place))
        for task_id in ids:
            for place in ZSET_PLACES:
                pipe.zscore(getattr(self.keys, place), task_id)
            pipe.hmget(self.keys.task(task_id), "status", "token", "attempts", "cancel")
        pipe.hget(self.keys.stats, "enqueued")
        pipe.hgetall(self.keys.depth)
        replies = pipe.execute()
        cards, rest, enqueued, depth = replies[:4], replies[4:-2], replies[-2], replies[-1]
        queued_by_priority = Counter(t.priority for t in self.in_place("queued"))
        assert {int(p): int(n) for p, n in depth.items() if int(n)} == queued_by_priority, "depth per priority"
        for place, card in zip(ZSET_PLACES, cards, strict=True):
            assert card == len(self.in_place(place)), f"{place} holds {card}, model {len(self.in_place(place))}"
        for i, task_id in enumerate(ids):
            t = self.tasks[task_id]
            scores = rest[i * 5 : i * 5 + 4]
            status, token, attempts, cancel = rest[i * 5 + 4]
            found = [p for p, s in zip(ZSET_PLACES, scores, strict=True) if s is not None]
            if t.place == "purged":
                assert found == [] and status is None, f"purged {task_id} left {found} {status}"
                continue
            assert found == ([t.place] if t.place in ZSET_PLACES else []), f"{task_id}: model {t.place}, in {found}"
            assert status == t.place, f"{task_id}: record says {status}, model {t.place}"
            assert int(attempts) == t.attempts
            if t.place in ("queued", "scheduled", "running"):
                assert (cancel == "1") == t.cancel_requested, f"{task_id}: abort flag {cancel!r}"
            if t.place == "running":
                assert t.lease is not None and token == t.lease.token
            else:
                assert token is None, f"{task_id} is {t.place} but still holds a lease token"
        assert int(enqueued or 0) == self.created


def test_task_lifecycle_state_machine(redis_url: str) -> None:
    TaskLifecycle.url = redis_url
    run_state_machine_as_test(
        TaskLifecycle,
        settings=settings(
            max_examples=120,
            stateful_step_count=30,
            derandomize=True,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
