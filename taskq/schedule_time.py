"""When a schedule fires: pure functions of a cron expression (parsed by ``cronsim``) or an
interval, a time zone (``zoneinfo``), and the misfire policy. No I/O, no clock of its own:
callers pass the time (the Redis server's clock, so every worker agrees).

* A cron schedule fires at the wall-clock times its expression names in its time zone.
  Across DST it does what cron does (``cronsim`` follows Debian cron): a time that does
  not exist (02:30 on a spring-forward night) fires once, at the first minute after the
  jump; a time that happens twice (01:30 on a fall-back night) fires once, the first time.
* An ``every_s`` schedule fires at the multiples of ``every_s`` since the Unix epoch, so
  every worker computes the same fire times without sharing an anchor.

Misfires: fire times within ``grace_s`` of now are on time and always run. Older ones
were missed (every worker was down, or the schedule was just resumed): ``"all"`` runs each
(the latest ``max_missed`` of them), ``"once"`` runs one for all of them, ``"skip"`` none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from taskq.errors import InvalidOption

Misfire = Literal["once", "all", "skip"]
MISFIRE_POLICIES = ("once", "all", "skip")
#: The most fire times one look enumerates (a per-second schedule idle for ~3 hours);
#: older misses beyond it count as one run under "once" and are dropped under "all".
MAX_ENUMERATED = 10_000
MIN_EVERY_S = 0.01


@dataclass(frozen=True, slots=True)
class FireRule:
    """What decides the fire times: a cron expression in a time zone, or an interval."""

    cron: str | None = None
    every_s: float | None = None
    timezone: str = "UTC"

    def fire_times(self, after_ms: int, until_ms: int, limit: int = MAX_ENUMERATED) -> list[int]:
        """Fire times (Unix ms) in ``(after_ms, until_ms]``, earliest first; the *latest*
        ``limit`` of them when there are more."""
        if until_ms <= after_ms:
            return []
        if self.every_s is not None:
            step = round(self.every_s * 1000)
            first = (after_ms // step + 1) * step
            last = until_ms // step * step
            if last < first:
                return []
            start = max(first, last - (limit - 1) * step)
            return list(range(start, last + 1, step))
        out: list[int] = []
        start = after_ms
        while True:  # enumerate forward; if there are too many, restart closer to the end
            out = []
            for when in self._cron_iter(start):
                if when > until_ms:
                    return out
                out.append(when)
                if len(out) > limit:
                    break
            start = max(start + 1, until_ms - (until_ms - start) // 2)

    def next_fire(self, after_ms: int) -> int:
        """The first fire time after ``after_ms``."""
        if self.every_s is not None:
            step = round(self.every_s * 1000)
            return (after_ms // step + 1) * step
        return next(self._cron_iter(after_ms))

    def _cron_iter(self, after_ms: int) -> CronIterator:
        zone = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(after_ms / 1000, UTC).astimezone(zone)
        return CronIterator(CronSim(self.cron or "", start.replace(microsecond=0)), after_ms)


class CronIterator:
    """Fire times in ms after ``after_ms`` (cronsim works in whole seconds)."""

    def __init__(self, sim: CronSim, after_ms: int) -> None:
        self._sim = sim
        self._after_ms = after_ms

    def __iter__(self) -> CronIterator:
        return self

    def __next__(self) -> int:
        while True:
            when = round(next(self._sim).timestamp() * 1000)
            if when > self._after_ms:
                return when


def due_fires(
    rule: FireRule, last_ms: int, now_ms: int, *, misfire: Misfire, grace_s: float, max_missed: int
) -> tuple[list[int], int]:
    """The fire times to run now, given the last one handled, and the new last one.

    Every fire time in ``(last_ms, now_ms]`` is handled once: on time (within ``grace_s``)
    it runs; missed, the policy decides. The new last is the latest fire time handled
    (``last_ms`` when none is due), so the next look starts after it: none is skipped by
    accident and none is run twice."""
    due = rule.fire_times(last_ms, now_ms, limit=MAX_ENUMERATED)
    if not due:
        return [], last_ms
    cutoff = now_ms - math.ceil(grace_s * 1000)
    late = [f for f in due if f < cutoff]
    on_time = due[len(late) :]
    if misfire == "all":
        late = late[-max_missed:] if max_missed > 0 else []
    elif misfire == "once":
        late = late[-1:]
    else:
        late = []
    return late + on_time, due[-1]


def check_timezone(timezone: object) -> str:
    if not isinstance(timezone, str) or not timezone:
        raise InvalidOption(f"timezone must be an IANA name such as 'Europe/Paris', got {timezone!r}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidOption(f"unknown time zone {timezone!r} (use an IANA name such as 'Europe/Paris')") from None
    return timezone


def check_cron(cron: object) -> str:
    if not isinstance(cron, str) or not cron.strip():
        raise InvalidOption(f"cron must be a cron expression such as '*/5 * * * *', got {cron!r}")
    try:
        CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise InvalidOption(f"invalid cron expression {cron!r}: {exc}") from None
    return cron


def check_every_s(every_s: object) -> float:
    if isinstance(every_s, bool) or not isinstance(every_s, (int, float)) or not math.isfinite(every_s):
        raise InvalidOption(f"every_s must be a number of seconds, got {every_s!r}")
    if not MIN_EVERY_S <= every_s <= 366 * 86400:
        raise InvalidOption(f"every_s must be between {MIN_EVERY_S} s and a year, got {every_s}")
    return float(every_s)


def check_schedule_spec(spec: object) -> FireRule:
    """``@tq.task(schedule=...)``: a cron expression (UTC) or a number of seconds."""
    if isinstance(spec, str):
        return FireRule(cron=check_cron(spec))
    return FireRule(every_s=check_every_s(spec))
