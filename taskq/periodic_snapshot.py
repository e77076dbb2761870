"""The schedules and rate limits a snapshot shows, read in the snapshot's own round trips
(:meth:`taskq.ops.Operations.snapshot` appends these commands to its pipelines, so a polling
dashboard still needs one round trip). No I/O.

Per queue: its ``limits`` hash, its ``schedules`` states, and the state keys of its
limiters: the queue's own always, and those of the task names the previous snapshot found
(the client's :class:`~taskq.telemetry.SnapshotHint`); a name seen for the first time shows
its limit with ``next_allowed_ms=None`` until the next snapshot reads its state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskq.ops_base import PlanSettings
from taskq.plan import Command
from taskq.ratelimit import LimiterState, RateLimit, limiter_state, limiter_suffix
from taskq.schedules import ScheduleInfo, parse_state
from taskq.schedules import decode_schedules as read_definitions

PER_QUEUE = 3  # commands per queue before its limiter state reads: limits, schedule states, queue limiter


def schedule_commands(settings: PlanSettings) -> list[Command]:
    return [Command(("HGETALL", settings.keys.schedules))]


def queue_commands(settings: PlanSettings, queue: str, known_names: Sequence[str]) -> list[Command]:
    """What the snapshot reads of one queue's schedules and limits."""
    k = settings.queue_keys(queue)
    cmds = [
        Command(("HGETALL", k.limits)),
        Command(("HGETALL", k.schedules)),
        Command(("GET", k.rate_prefix + limiter_suffix(None))),
    ]
    cmds += [Command(("GET", k.rate_prefix + limiter_suffix(name))) for name in known_names]
    return cmds


def decode_queue(
    replies: Sequence[Any], known_names: Sequence[str], now_ms: int
) -> tuple[tuple[LimiterState, ...], dict[str, str], list[str]]:
    """A queue's limiter states, its schedule states (name -> raw), and its task-name limits
    (for the next snapshot's hint), from the replies of :func:`queue_commands`."""
    limits = _pairs(replies[0])
    states = _pairs(replies[1])
    read = dict(zip(known_names, replies[PER_QUEUE:], strict=True))
    out = []
    for name in sorted(limits):
        limit = RateLimit.from_spec(limits[name])
        label = "queue" if not name else f"task {name}"
        if not name:
            out.append(limiter_state(label, limit, replies[2], now_ms))
        elif name in read:
            out.append(limiter_state(label, limit, read[name], now_ms))
        else:
            out.append(LimiterState(label, limit, None))
    return tuple(out), states, sorted(n for n in limits if n)


def decode_schedules(raw: Any, states: Mapping[str, str], now_ms: int) -> tuple[ScheduleInfo, ...]:
    """Every schedule, with the state of those whose queue the snapshot read."""
    out = []
    for s in read_definitions(raw or []):
        last, task_id, enqueued = parse_state(states.get(s.name))
        next_fire = None if s.paused else s.rule.next_fire(max(last or now_ms, now_ms - 1))
        out.append(ScheduleInfo(s, last, task_id, enqueued, next_fire))
    return tuple(out)


def _pairs(flat: Any) -> dict[str, str]:
    if not flat:
        return {}
    if isinstance(flat, dict):
        return {str(a): str(b) for a, b in flat.items()}
    return {str(a): str(b) for a, b in zip(flat[::2], flat[1::2], strict=True)}


def split_replies(replies: Sequence[Any], commands: Mapping[str, list[Command]]) -> dict[str, list[Any]]:
    """The replies of consecutive per-queue command lists, by queue."""
    out, at = {}, 0
    for q, cmds in commands.items():
        out[q] = list(replies[at : at + len(cmds)])
        at += len(cmds)
    return out
