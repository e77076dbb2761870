"""Rate limits: what ``rate="50/s"`` means, how it is stored, and how its state reads back.
No I/O; the limiter itself runs inside the claim script (``lua/lib/ratelimit.lua``), so a
limited task is never claimed and handed back.

A limit is ``count`` runs per ``period_s``, global across every worker, for a whole queue
(``configure_queue(q, rate=...)``), a task name (``@tq.task(rate=...)``), or a task name and a
key computed from the task's arguments (``rate_key=``, e.g. one limit per customer).

Two algorithms, both exact over the long run (``count`` per ``period_s``):

* ``gcra`` (the default), the generic cell rate algorithm: one timestamp per limiter, the
  theoretical arrival time of the next run; up to ``burst`` runs may go at once, the rest
  are spaced ``period_s / count`` apart. The default burst is a tenth of ``count``
  (at least 1): enough to absorb the few milliseconds a worker wakes late, so the rate holds.
* ``token_bucket``: ``burst`` tokens (default ``count``: a whole period's worth at once),
  refilled at ``count / period_s``; one token per run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, Literal

from taskq.errors import InvalidOption
from taskq.ops_base import PlanSettings, no_result, time_ms
from taskq.plan import Command, Flow, Plan

Algorithm = Literal["gcra", "token_bucket"]
ALGORITHMS: dict[str, str] = {"gcra": "gcra", "token_bucket": "tb"}  # name -> the scripts' code
_PERIODS_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")
#: The meta label that carries a task's rate key (``rate_key=``) to the claim script.
RATE_KEY_META = "taskq.rate_key"
MAX_COUNT = 1_000_000
MAX_PERIOD_S = 86400.0 * 7


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``count`` runs per ``period_s`` seconds, ``burst`` of them at once at most."""

    count: int
    period_s: float
    burst: int
    algorithm: Algorithm = "gcra"

    @property
    def interval_ms(self) -> float:
        """The time between runs at the steady rate."""
        return self.period_s * 1000 / self.count

    def spec(self) -> str:
        """The text the claim script reads: ``"<algo> <count> <period ms> <burst>"``."""
        return f"{ALGORITHMS[self.algorithm]} {self.count} {round(self.period_s * 1000)} {self.burst}"

    def __str__(self) -> str:
        period = f"{self.period_s:g}s"
        return f"{self.count}/{period} burst {self.burst} ({self.algorithm})"

    @classmethod
    def from_spec(cls, spec: str) -> RateLimit:
        code, count, period_ms, burst = spec.split()
        algorithm: Algorithm = "gcra" if code == "gcra" else "token_bucket"
        return cls(int(count), int(period_ms) / 1000, int(burst), algorithm)


def parse_rate(rate: object, *, burst: int | None = None, algorithm: str = "gcra") -> RateLimit:
    """A :class:`RateLimit` from ``"50/s"``, ``"10/m"``, ``"1000/h"``, ``"5/10s"``, or a
    RateLimit (returned as is). Anything else raises :class:`~taskq.errors.InvalidOption`."""
    if isinstance(rate, RateLimit):
        return rate
    if algorithm not in ALGORITHMS:
        raise InvalidOption(f"rate algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    match = _RATE_RE.match(rate) if isinstance(rate, str) else None
    if match is None or match.group(3) not in _PERIODS_S:
        raise InvalidOption(f"rate must look like '50/s', '10/m', '1000/h' or '5/10s', got {rate!r}")
    count = int(match.group(1))
    period_s = int(match.group(2) or 1) * _PERIODS_S[match.group(3)]
    if not 1 <= count <= MAX_COUNT or not 0 < period_s <= MAX_PERIOD_S:
        raise InvalidOption(f"rate {rate!r}: count must be 1..{MAX_COUNT} per a period of up to 7 days")
    if period_s * 1000 / count < 0.001:
        raise InvalidOption(f"rate {rate!r} is over a million per second")
    if burst is None:
        burst = max(1, math.ceil(count / 10)) if algorithm == "gcra" else count
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_COUNT:
        raise InvalidOption(f"burst must be an integer 1..{MAX_COUNT}, got {burst!r}")
    return RateLimit(count, period_s, burst, algorithm)  # type: ignore[arg-type]


def queue_rate(rate: str | RateLimit | EllipsisType | None) -> RateLimit | EllipsisType | None:
    """``configure_queue``'s ``rate``: a limit, None (clear it) or ``...`` (keep it)."""
    if rate is None or isinstance(rate, EllipsisType):
        return rate
    return parse_rate(rate)


def rate_key_meta(key: object) -> str:
    """A rate key as the task carries it (a meta label, at most 256 chars)."""
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise InvalidOption(f"rate_key must return a str or int, got {type(key).__name__}")
    text = str(key)
    if not text or len(text) > 256:
        raise InvalidOption(f"rate_key must return 1..256 characters, got {text!r:.80}")
    return text


@dataclass(frozen=True, slots=True)
class LimiterState:
    """One limiter as the snapshot shows it: which, its limit, and when it may next let a
    task run (server-clock ms; at or before now means it is open)."""

    limiter: str  # "queue" or "task NAME"
    limit: RateLimit
    next_allowed_ms: int | None  # None: not read (a snapshot reads a new name's state next time)
    tokens: float | None = None  # token bucket only

    def open_at(self, now_ms: int) -> bool:
        return self.next_allowed_ms is not None and self.next_allowed_ms <= now_ms


def limiter_state(limiter: str, limit: RateLimit, raw: str | None, now_ms: int) -> LimiterState:
    """Decode a limiter's state key (as ``lua/lib/ratelimit.lua`` writes it)."""
    if limit.algorithm == "gcra":
        tat_us = float(raw) if raw else 0.0
        tau_us = (limit.burst - 1) * limit.interval_ms * 1000
        return LimiterState(limiter, limit, max(now_ms, math.ceil((tat_us - tau_us) / 1000)))
    if not raw:
        return LimiterState(limiter, limit, now_ms, float(limit.burst))
    tokens_s, last_us_s = raw.split()
    elapsed_ms = max(0.0, now_ms - float(last_us_s) / 1000)
    tokens = min(float(limit.burst), float(tokens_s) + elapsed_ms / limit.interval_ms)
    wait_ms = 0.0 if tokens >= 1 else (1 - tokens) * limit.interval_ms
    return LimiterState(limiter, limit, now_ms + math.ceil(wait_ms), tokens)


def limiter_suffix(name: str | None, key: str | None = None) -> str:
    """The state key's suffix (after the queue's rate-limit prefix) of one limiter, as the
    claim script builds it: ``q`` for the queue, ``n:<len>:<name>[:<key>]`` for a task."""
    if name is None:
        return "q"
    return f"n:{len(name)}:{name}" + (f":{key}" if key is not None else "")


# -- plans (no I/O; the clients and the worker run them) -------------------------------


def set_limits_plan(settings: PlanSettings, queue: str, limits: Mapping[str, RateLimit | None]) -> Plan[None]:
    """Set (or, with None, clear) rate limits of ``queue``: keys are task names, or '' for
    the whole queue. One HSET and one HDEL at most: the claim script reads the hash whole."""
    k = settings.queue_keys(queue)
    put = [x for name, limit in limits.items() if limit is not None for x in (name, limit.spec())]
    drop = [name for name, limit in limits.items() if limit is None]
    cmds = []
    if put:
        cmds.append(Command(("HSET", k.limits, *put)))
    if drop:
        cmds.append(Command(("HDEL", k.limits, *drop)))
    return Plan(cmds, no_result)


def rate_state_flow(settings: PlanSettings, queue: str) -> Flow[list[LimiterState]]:
    """The queue's limiters and their state now (the queue's, and each task name's; per-key
    limiters are many, so only those named in ``limits`` are read)."""
    k = settings.queue_keys(queue)
    limits, now = yield Plan([Command(("HGETALL", k.limits)), Command(("TIME",))], lambda rs: rs)
    specs = _pairs(limits)
    if not specs:
        return []
    names = sorted(specs)
    state_keys = [k.rate_prefix + limiter_suffix(name or None) for name in names]
    raws = yield Plan([Command(("GET", key)) for key in state_keys], lambda rs: rs)
    now_ms = time_ms(now)
    return [
        limiter_state("queue" if not name else f"task {name}", RateLimit.from_spec(specs[name]), raw, now_ms)
        for name, raw in zip(names, raws, strict=True)
    ]


def _pairs(flat: Any) -> dict[str, str]:
    if isinstance(flat, dict):
        return {str(a): str(b) for a, b in flat.items()}
    return {str(a): str(b) for a, b in zip(flat[::2], flat[1::2], strict=True)}
