"""The worker's plans: claim, finish (complete / fail), extend, release, the reaper and
promoter, and the worker's heartbeat; with the records they carry. No I/O.
:class:`~taskq.ops.Operations` inherits them, so one object builds every plan."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from taskq.backoff import Backoff
from taskq.errors import InvalidOption, LeaseLost
from taskq.ops_base import FORGET_WORKERS_AFTER_MS, MAX_BATCH, PlanSettings, no_result, reply_error, script_call
from taskq.plan import Command, Plan
from taskq.registry import TaskDef
from taskq.task import backoff_from_record, decode_meta


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task leased to a worker, with what the worker needs to run it."""

    id: str
    queue: str
    token: str
    attempts: int
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    timeout_s: float | None
    max_retries: int
    backoff: Backoff
    priority: int
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def retries_left(self) -> int:
        return max(0, self.max_retries + 1 - self.attempts)


CLAIM_FIELDS = 14


@dataclass(frozen=True, slots=True)
class Completion:
    """A leased task finished: its JSON result and outcome ('succeeded' or 'cancelled')."""

    task: ClaimedTask
    result_json: str
    outcome: str = "succeeded"


@dataclass(frozen=True, slots=True)
class Failure:
    """A leased task's attempt failed; ``retry_delay_ms`` < 0 means do not retry."""

    task: ClaimedTask
    error_type: str
    error: str
    traceback: str
    retry_delay_ms: int


@dataclass(frozen=True, slots=True)
class WorkerPlans(PlanSettings):
    """Plans the worker runs (a base of :class:`~taskq.ops.Operations`)."""

    # -- worker ---------------------------------------------------------------------

    def worker_heartbeat(
        self,
        info: dict[str, Any],
        ttl_s: float,
        registry_ms: int | None = None,
        tasks: Sequence[TaskDef] = (),
    ) -> Plan[tuple[int, int]]:
        """Write a worker's registration (heartbeat.lua): it disappears ``ttl_s`` after the last
        heartbeat. Its ``heartbeat_ms`` is the Redis server's clock (unless ``info`` gives one),
        and so is ``started_ms`` when ``info`` gives it as '' (a worker's first heartbeat; left
        out, the registered start is kept). The result is (heartbeat ms, started ms) as
        registered.

        The worker registry (a sorted set on another Cluster slot, so not in the script) is
        scored with ``info['heartbeat_ms']``, else ``registry_ms``: the caller's estimate of
        the server clock (a worker adds the offset its last heartbeat reply showed). Only
        workers whose registration expired are aged by that score. Registry entries of
        workers gone for over an hour are dropped on the way. ``tasks`` are published to the
        task registry (:mod:`taskq.registry`) in the same round trip."""
        g = self.keys
        fields = {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in info.items()}
        flat = [x for kv in fields.items() for x in kv]
        worker_id = str(info["id"])
        beat = info.get("heartbeat_ms", registry_ms)
        if beat is None:
            raise InvalidOption("worker_heartbeat needs info['heartbeat_ms'] or registry_ms for the worker registry")
        score = int(beat)
        cmds = [
            script_call("heartbeat", [g.worker(worker_id)], [max(1, int(ttl_s * 1000)), *flat]),
            Command(("ZADD", g.workers, score, worker_id)),
            Command(("ZREMRANGEBYSCORE", g.workers, "-inf", f"({score - FORGET_WORKERS_AFTER_MS}")),
        ]
        if tasks:  # the task registry (taskq.registry), stamped with the same clock
            published = [x for d in tasks for x in (d.name, d.published(worker_id, score))]
            cmds.append(Command(("HSET", g.tasks, *published)))
        return Plan(cmds, lambda rs: (int(rs[0][0]), int(rs[0][1])))

    def worker_gone(self, worker_id: str) -> Plan[None]:
        g = self.keys
        return Plan([Command(("DEL", g.worker(worker_id))), Command(("ZREM", g.workers, worker_id))], no_result)

    def claim_batch(
        self, queue: str, max_n: int, lease_ms: int, worker_id: str, register_ms: int = 0, register_slots: int = 1
    ) -> Plan[tuple[list[ClaimedTask], int]]:
        """Lease up to ``max_n`` tasks (those the queue's rate limits allow); also returns the
        due time (ms) of the earliest task still scheduled, or the time a rate limit next
        allows a task it held back if sooner, or -1, so an idle worker knows when to look again.
        ``register_ms`` > 0: a claim that leaves the queue empty registers the worker for the
        hand-off (:mod:`taskq.handoff`) for that long, to be handed up to ``register_slots``
        tasks (no more than it left unasked: ``max_n`` less those claimed)."""
        k = self.queue_keys(queue)
        args = [max_n, lease_ms, worker_id, k.task_prefix, self.tel, self.wake(k), k.rate_prefix]
        cmd = script_call(
            "claim",
            [k.queued, k.scheduled, k.running, k.config, *k.telemetry, k.limits, k.idle],
            [*args, register_ms, register_slots],
        )
        return Plan([cmd], lambda rs: _parse_claim(queue, rs[0]))

    def claim(self, queue: str, max_n: int, lease_ms: int, worker_id: str) -> Plan[list[ClaimedTask]]:
        """Lease up to ``max_n`` tasks (see :meth:`claim_batch`)."""
        plan = self.claim_batch(queue, max_n, lease_ms, worker_id)
        return Plan(plan.commands, lambda rs: _parse_claim(queue, rs[0])[0])

    def complete_command(self, task: ClaimedTask, result_json: str, outcome: str = "succeeded") -> Completion:
        """A leased task's result, for :meth:`finish`. ``outcome`` is 'succeeded', or
        'cancelled' when it stopped on its abort flag."""
        return Completion(task, result_json, outcome)

    def fail_command(
        self,
        task: ClaimedTask,
        error_type: str,
        error: str,
        traceback: str,
        retry_delay_ms: int,
    ) -> Failure:
        """A failed attempt, for :meth:`finish`. ``retry_delay_ms`` < 0 sends the task to the
        dead-letter queue whatever attempts are left."""
        return Failure(task, error_type, error, traceback, retry_delay_ms)

    def finish(self, outcomes: Sequence[Completion | Failure]) -> Plan[list[Any]]:
        """Record outcomes in one round trip: the completions of each queue in one script
        call, each failure in its own. The result has one entry per outcome, in order: 1 for
        a completion, ('scheduled', due_ms) or ('dead', ms) for a failure, or a
        :class:`~taskq.errors.LeaseLost` instance where the lease was no longer held."""
        commands: list[Command] = []
        slots: list[tuple[int, int]] = []  # per outcome: (command index, index in its reply or -1)
        batches: list[tuple[int, list[Completion]]] = []  # (command index, completions)
        open_batch: dict[str, tuple[int, list[Completion]]] = {}  # per queue: the batch being filled
        for item in outcomes:
            if isinstance(item, Failure):
                slots.append((len(commands), -1))
                commands.append(self._fail_call(item))
                continue
            index, batch = open_batch.get(item.task.queue, (-1, []))
            if index < 0 or len(batch) >= MAX_BATCH:
                index, batch = len(commands), []
                open_batch[item.task.queue] = (index, batch)
                batches.append((index, batch))
                commands.append(Command(()))  # replaced below, once the batch is complete
            slots.append((index, len(batch)))
            batch.append(item)
        for index, batch in batches:
            commands[index] = self._complete_call(batch)

        def parse(replies: list[Any]) -> list[Any]:
            # Once per command, not per outcome: a completion batch's reply is one list for
            # up to MAX_BATCH outcomes, and reply_error reads the text of what it is given.
            errors = [reply_error(reply) for reply in replies]
            out: list[Any] = []
            for item, (index, position) in zip(outcomes, slots, strict=True):
                reply = replies[index]
                error = errors[index]
                if error is not None:
                    out.append(error)
                elif position < 0:
                    out.append((str(reply[0]), int(reply[1])))
                elif int(reply[position]) == 1:
                    out.append(1)
                else:
                    out.append(LeaseLost(f"task {item.task.id} is no longer leased with this token"))
            return out

        return Plan(commands, parse, errors_inline=True)

    def _complete_call(self, batch: Sequence[Completion]) -> Command:
        k = self.queue_keys(batch[0].task.queue)
        argv: list[Any] = [k.task_prefix, k.idem_prefix, self.tel]
        for c in batch:
            argv += [c.task.id, c.task.token, c.result_json, c.outcome]
        return script_call("complete", [k.running, *k.telemetry], argv)

    def _fail_call(self, f: Failure) -> Command:
        k = self.queue_keys(f.task.queue)
        return script_call(
            "fail",
            [k.running, k.scheduled, k.dead, k.task(f.task.id), *k.telemetry],
            [
                f.task.id,
                f.task.token,
                f.error_type,
                f.error,
                f.traceback,
                f.retry_delay_ms,
                self.tel,
                k.idem_prefix,
                self.dead_ttl_s,
                self.wake(k),
            ],
        )

    def extend(self, queue: str, leases: Sequence[tuple[str, str]], lease_ms: int) -> Plan[list[int]]:
        k = self.queue_keys(queue)
        argv: list[Any] = [lease_ms, k.task_prefix]
        for task_id, token in leases:
            argv += [task_id, token]
        return Plan([script_call("extend", [k.running], argv)], lambda rs: [int(x) for x in rs[0]])

    def release(self, queue: str, leases: Sequence[tuple[str, str]]) -> Plan[int]:
        k = self.queue_keys(queue)
        argv: list[Any] = [k.task_prefix, self.tel, self.wake(k)]
        for task_id, token in leases:
            argv += [task_id, token]
        cmd = script_call("release", [k.running, k.queued, *k.telemetry], argv)
        return Plan([cmd], lambda rs: int(rs[0]))

    def requeue_expired(self, queue: str, limit: int = MAX_BATCH) -> Plan[tuple[int, int]]:
        k = self.queue_keys(queue)
        cmd = script_call(
            "requeue_expired",
            [k.running, k.queued, k.dead, *k.telemetry],
            [limit, k.task_prefix, k.idem_prefix, self.tel, self.dead_ttl_s, self.wake(k)],
        )
        return Plan([cmd], lambda rs: (int(rs[0][0]), int(rs[0][1])))

    def promote_due(self, queue: str, limit: int = MAX_BATCH) -> Plan[tuple[int, int]]:
        """Promote due scheduled tasks; returns (promoted, next due ms or -1)."""
        k = self.queue_keys(queue)
        cmd = script_call(
            "promote_due",
            [k.scheduled, k.queued, k.config, *k.telemetry],
            [limit, k.task_prefix, self.tel, self.wake(k)],
        )
        return Plan([cmd], lambda rs: (int(rs[0][0]), int(rs[0][1])))


def _parse_claim(queue: str, flat: list[Any]) -> tuple[list[ClaimedTask], int]:
    out = []
    for i in range(1, len(flat), CLAIM_FIELDS):
        f = flat[i : i + CLAIM_FIELDS]
        timeout_ms = int(f[6] or 0)
        out.append(
            ClaimedTask(
                id=f[0],
                queue=queue,
                token=f[1],
                attempts=int(f[2]),
                name=f[3],
                args=_loads(f[4], []),
                kwargs=_loads(f[5], {}),
                timeout_s=timeout_ms / 1000 if timeout_ms else None,
                max_retries=int(f[7]),
                backoff=backoff_from_record(f[8], f[9], f[10], f[11]),
                priority=int(f[12]),
                meta=decode_meta(f[13]),
            )
        )
    return out, int(flat[0])


def parse_handoff(queue: str, data: str) -> list[ClaimedTask]:
    """A hand-off message (lib/common.lua, ``handoff``; :mod:`taskq.handoff`): the tasks one
    enqueue script handed this worker, the fields of each as in a claim reply, one task after
    the other in one JSON array, where a field left out is false (a claim reply's None)."""
    fields = json.loads(data)
    if not isinstance(fields, list) or not fields or len(fields) % CLAIM_FIELDS:
        raise ValueError(f"a hand-off holds {CLAIM_FIELDS} fields per task")
    return _parse_claim(queue, [-1, *(None if v is False else v for v in fields)])[0]


def _loads(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    if raw == "[]":  # no arguments, the common case: skip the decoder
        return []
    return json.loads(raw)
