"""Periodic tasks: schedule definitions stored in Redis, and the tick every worker runs.

There is no scheduler process. A schedule's definition (task, arguments, cron or interval,
time zone, misfire policy) lives in one global hash (:attr:`taskq.keys.GlobalKeys.schedules`),
so every worker, the CLI and the API see the same schedules. Its state, the last fire time
handled, lives in the queue's ``schedules`` hash, on the queue's Cluster slot. Each worker
ticks: it reads the definitions and states, works out which fire times are due
(:func:`taskq.schedule_time.due_fires`), and calls ``schedule_tick.lua`` with the state it
read. The script enqueues those fire times and moves the state on only if the state is
still what the worker read, so N workers give one run per fire time, and a worker that
dies before, during or after the call neither skips a fire time nor doubles one (the next
tick of any worker picks up from the state in Redis). Each task carries
``meta = {"schedule": name, "fire_ms": fire time}``. No I/O here: plans and a flow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from taskq.errors import InvalidOption, TaskNotFound
from taskq.keys import check_queue_name
from taskq.ops_base import PlanSettings, no_result, reply_error, script_call, time_ms
from taskq.plan import Command, Flow, Plan
from taskq.schedule_time import (
    MISFIRE_POLICIES,
    FireRule,
    Misfire,
    check_cron,
    check_every_s,
    check_timezone,
    due_fires,
)
from taskq.task import DEFAULT_MAX_RETRIES, DEFAULT_RESULT_TTL_S, TaskSpec, new_task_id

DEFAULT_GRACE_S = 60.0
DEFAULT_MAX_MISSED = 100
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-:")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic task: run ``task`` with ``args``/``kwargs`` on ``queue`` at every fire
    time of ``cron`` (in ``timezone``) or every ``every_s`` seconds. ``misfire``: what to do
    with fire times more than ``grace_s`` old when a worker first sees them ("once", "all"
    up to ``max_missed``, "skip")."""

    name: str
    task: str
    queue: str
    cron: str | None = None
    every_s: float | None = None
    timezone: str = "UTC"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    priority: int | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout_s: float | None = None
    result_ttl_s: int = DEFAULT_RESULT_TTL_S
    misfire: Misfire = "once"
    grace_s: float = DEFAULT_GRACE_S
    max_missed: int = DEFAULT_MAX_MISSED
    paused: bool = False

    @property
    def rule(self) -> FireRule:
        return FireRule(self.cron, self.every_s, self.timezone)

    @property
    def every(self) -> str:
        """The schedule in words: the cron expression and zone, or the interval."""
        if self.cron is not None:
            return f"{self.cron} ({self.timezone})"
        return f"every {self.every_s:g} s"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Schedule:
        data = json.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def decode_schedules(pairs: Any) -> list[Schedule]:
    """The definitions in ``pairs`` (name, JSON), by name; one that cannot be read (written by
    hand, or by another version) is left out, so it cannot stop every other schedule."""
    items = pairs.items() if isinstance(pairs, dict) else zip(pairs[::2], pairs[1::2], strict=True)
    out = []
    for _, raw in items:
        try:
            schedule = Schedule.from_json(raw)
            schedule.rule.next_fire(0)  # its cron expression and time zone work
        except Exception:  # noqa: BLE001 - any fault of the stored text: skip this one
            continue
        out.append(schedule)
    return sorted(out, key=lambda s: s.name)


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule and its state: the last fire time handled, the task it enqueued and
    when, and the next fire time (None while paused)."""

    schedule: Schedule
    last_fire_ms: int | None
    last_task_id: str | None
    last_enqueued_ms: int | None
    next_fire_ms: int | None

    @property
    def name(self) -> str:
        return self.schedule.name


def check_schedule_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or not set(name) <= _NAME_CHARS:
        raise InvalidOption(f"schedule name must be 1-200 letters, digits, '_', '.', '-' or ':', got {name!r}")
    return name


def build_schedule(
    name: str,
    task: str,
    *,
    queue: str,
    cron: str | None = None,
    every_s: float | None = None,
    timezone: str = "UTC",
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    priority: int | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout_s: float | None = None,
    result_ttl_s: int = DEFAULT_RESULT_TTL_S,
    misfire: str = "once",
    grace_s: float = DEFAULT_GRACE_S,
    max_missed: int = DEFAULT_MAX_MISSED,
) -> Schedule:
    """A validated :class:`Schedule`; bad input raises :class:`~taskq.errors.InvalidOption`
    (or the task validation's own errors) before anything is written."""
    check_schedule_name(name)
    check_queue_name(queue)
    if (cron is None) == (every_s is None):
        raise InvalidOption("give a schedule either cron=... or every_s=..., exactly one")
    if cron is not None:
        check_cron(cron)
    every = None if every_s is None else check_every_s(every_s)
    check_timezone(timezone)
    if misfire not in MISFIRE_POLICIES:
        raise InvalidOption(f"misfire must be one of {', '.join(MISFIRE_POLICIES)}, got {misfire!r}")
    if isinstance(grace_s, bool) or not isinstance(grace_s, (int, float)) or not 0 <= grace_s <= 86400:
        raise InvalidOption(f"grace_s must be 0..86400 seconds, got {grace_s!r}")
    if isinstance(max_missed, bool) or not isinstance(max_missed, int) or not 0 <= max_missed <= 10_000:
        raise InvalidOption(f"max_missed must be an integer 0..10000, got {max_missed!r}")
    # The task options are checked as an enqueue would check them.
    TaskSpec.build(
        task,
        args=args,
        kwargs=kwargs,
        queue=queue,
        priority=priority,
        max_retries=max_retries,
        timeout_s=timeout_s,
        result_ttl_s=result_ttl_s,
    )
    return Schedule(
        name=name,
        task=task,
        queue=queue,
        cron=cron,
        every_s=every,
        timezone=timezone,
        args=list(args),
        kwargs=dict(kwargs or {}),
        priority=priority,
        max_retries=max_retries,
        timeout_s=timeout_s,
        result_ttl_s=result_ttl_s,
        misfire=misfire,  # type: ignore[arg-type]
        grace_s=float(grace_s),
        max_missed=max_missed,
    )


def parse_state(raw: str | None) -> tuple[int | None, str | None, int | None]:
    if not raw:
        return None, None, None
    last, task_id, enqueued = raw.split()
    return int(last), None if task_id == "-" else task_id, int(enqueued) if task_id != "-" else None


# -- plans and flows ----------------------------------------------------------------------


def put_schedule_flow(settings: PlanSettings, schedule: Schedule, *, keep_paused: bool = False) -> Flow[Schedule]:
    """Store ``schedule`` (replacing one of that name). A new schedule starts now: fire
    times before it was added are not missed ones. ``keep_paused``: an existing schedule
    keeps its paused flag (a worker re-publishing its ``@tq.task(schedule=...)``)."""
    g = settings.keys
    old_raw, now = yield Plan([Command(("HGET", g.schedules, schedule.name)), Command(("TIME",))], lambda rs: rs)
    old = Schedule.from_json(old_raw) if old_raw else None
    if old is not None and keep_paused:
        schedule = replace(schedule, paused=old.paused)
    if old is not None and old == schedule:
        return schedule
    k = settings.queue_keys(schedule.queue)
    cmds = [Command(("HSET", g.schedules, schedule.name, schedule.to_json()))]
    if old is not None and old.queue != schedule.queue:
        cmds.append(Command(("HDEL", settings.queue_keys(old.queue).schedules, schedule.name)))
    # Only a new schedule (or one moved to another queue) starts from now.
    if old is None or old.queue != schedule.queue:
        cmds.append(Command(("HSET", k.schedules, schedule.name, f"{time_ms(now)} - 0")))
        cmds.append(Command(("SADD", g.queues, schedule.queue)))
    yield Plan(cmds, no_result)
    return schedule


def remove_schedule_flow(settings: PlanSettings, name: str) -> Flow[None]:
    """Delete schedule ``name`` (:class:`TaskNotFound` if there is none)."""
    g = settings.keys
    raw = yield Plan([Command(("HGET", g.schedules, name))], lambda rs: rs[0])
    if not raw:
        raise TaskNotFound(f"no schedule named {name!r}")
    schedule = Schedule.from_json(raw)
    k = settings.queue_keys(schedule.queue)
    yield Plan([Command(("HDEL", g.schedules, name)), Command(("HDEL", k.schedules, name))], no_result)


def pause_schedule_flow(settings: PlanSettings, name: str, paused: bool) -> Flow[None]:
    """Pause or resume schedule ``name``. A resumed schedule starts from now: the fire times
    it slept through are skipped, not misfires."""
    g = settings.keys
    raw, now = yield Plan([Command(("HGET", g.schedules, name)), Command(("TIME",))], lambda rs: rs)
    if not raw:
        raise TaskNotFound(f"no schedule named {name!r}")
    schedule = Schedule.from_json(raw)
    if schedule.paused == paused:
        return
    k = settings.queue_keys(schedule.queue)
    cmds = [Command(("HSET", g.schedules, name, replace(schedule, paused=paused).to_json()))]
    if not paused:
        old = yield Plan([Command(("HGET", k.schedules, name))], lambda rs: rs[0])
        _, task_id, enqueued = parse_state(old)
        cmds.append(Command(("HSET", k.schedules, name, f"{time_ms(now)} {task_id or '-'} {enqueued or 0}")))
    yield Plan(cmds, no_result)


def schedules_flow(settings: PlanSettings) -> Flow[list[ScheduleInfo]]:
    """Every schedule with its state and next fire time, by name."""
    schedules, now_ms = yield from _definitions(settings)
    states = yield from _states(settings, schedules)
    out = []
    for s in schedules:
        last, task_id, enqueued = parse_state(states.get(s.name))
        next_fire = None if s.paused else s.rule.next_fire(max(last or now_ms, now_ms - 1))
        out.append(ScheduleInfo(s, last, task_id, enqueued, next_fire))
    return out


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one tick did: tasks enqueued, and when the next fire time of the schedules it
    looked at is (server-clock ms, None when there is none)."""

    enqueued: int
    next_fire_ms: int | None
    now_ms: int


def tick_flow(settings: PlanSettings, queues: Sequence[str] | None = None) -> Flow[TickResult]:
    """One tick: enqueue every due fire time of the active schedules of ``queues`` (None:
    all), each exactly once however many workers tick at the same moment."""
    schedules, now_ms = yield from _definitions(settings)
    active = [s for s in schedules if not s.paused and (queues is None or s.queue in queues)]
    if not active:
        return TickResult(0, None, now_ms)
    states = yield from _states(settings, active)
    cmds: list[Command] = []
    next_fire: int | None = None
    for s in active:
        raw = states.get(s.name) or ""
        last, _, _ = parse_state(raw)
        fires: list[int] = []
        if last is None:  # no state (a worker published it, or it was just added): start now
            new_last = now_ms
        else:
            fires, new_last = due_fires(
                s.rule, last, now_ms, misfire=s.misfire, grace_s=s.grace_s, max_missed=s.max_missed
            )
        if fires or last is None or new_last != last:
            cmds.append(_tick_call(settings, s, raw, new_last, fires))
        upcoming = s.rule.next_fire(max(new_last, now_ms))
        next_fire = upcoming if next_fire is None else min(next_fire, upcoming)
    ticks = len(cmds)
    queues_fired = sorted({s.queue for s in active})  # the queue registry lists them (a global key)
    if cmds:
        cmds.append(Command(("SADD", settings.keys.queues, *queues_fired)))
    replies = (yield Plan(cmds, lambda rs: rs, errors_inline=True)) if cmds else []
    enqueued = 0
    for reply in replies[:ticks]:
        error = reply_error(reply)
        if error is not None:
            raise error
        if int(reply[0]) == 1:
            enqueued += int(reply[1])
    return TickResult(enqueued, next_fire, now_ms)


def _tick_call(settings: PlanSettings, s: Schedule, state: str, new_last: int, fires: Sequence[int]) -> Command:
    k = settings.queue_keys(s.queue)
    argv: list[Any] = [
        s.name,
        state,
        new_last,
        k.task_prefix,
        settings.tel,
        settings.wake(k),
        s.task,
        json.dumps(s.args, separators=(",", ":")),
        json.dumps(s.kwargs, separators=(",", ":")) if s.kwargs else "",
        "" if s.priority is None else s.priority,
        s.max_retries,
        0 if s.timeout_s is None else int(s.timeout_s * 1000),
        s.result_ttl_s,
    ]
    for fire_ms in fires:
        argv += [new_task_id(s.queue), fire_ms]
    return script_call("schedule_tick", [k.schedules, k.queued, k.config, *k.telemetry], argv)


def _definitions(settings: PlanSettings) -> Flow[tuple[list[Schedule], int]]:
    g = settings.keys
    raw, now = yield Plan([Command(("HGETALL", g.schedules)), Command(("TIME",))], lambda rs: rs)
    return decode_schedules(raw), time_ms(now)


def _states(settings: PlanSettings, schedules: Sequence[Schedule]) -> Flow[dict[str, str | None]]:
    by_queue: dict[str, list[str]] = {}
    for s in schedules:
        by_queue.setdefault(s.queue, []).append(s.name)
    if not by_queue:
        return {}
    cmds = [Command(("HMGET", settings.queue_keys(q).schedules, *names)) for q, names in by_queue.items()]
    replies = yield Plan(cmds, lambda rs: rs)
    out: dict[str, str | None] = {}
    for names, values in zip(by_queue.values(), replies, strict=True):
        out.update(zip(names, values, strict=True))
    return out
