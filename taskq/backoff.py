"""Retry backoff: pure functions, no I/O.

The delay before retry ``n`` (``n`` = 1 for the first retry) is exponential,
``base_s * 2 ** (n - 1)``, clamped to ``[min_s, cap_s]``, then spread by "equal
jitter": a uniformly random part of up to ``jitter`` (a fraction 0..1) of the delay
is taken off, so retries of many tasks that failed together do not arrive together.
The result is clamped again, so it always lies in ``[min_s, cap_s]``.

Defaults: base 1 s, cap 300 s, floor 1 s, jitter 0.5.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from taskq.errors import InvalidOption

DEFAULT_BASE_S = 1.0
DEFAULT_CAP_S = 300.0
DEFAULT_MIN_S = 1.0
DEFAULT_JITTER = 0.5


@dataclass(frozen=True, slots=True)
class Backoff:
    """A retry schedule. Validated on construction."""

    base_s: float = DEFAULT_BASE_S
    cap_s: float = DEFAULT_CAP_S
    jitter: float = DEFAULT_JITTER
    min_s: float = DEFAULT_MIN_S

    def __post_init__(self) -> None:
        # Finite numbers only: an infinite cap or a NaN base would pass the range checks
        # below and then fail (OverflowError, ValueError) when enqueued as milliseconds.
        values = (self.base_s, self.cap_s, self.jitter, self.min_s)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise InvalidOption(
                f"backoff base_s, cap_s, jitter and min_s must be finite numbers, got base_s={self.base_s!r}, "
                f"cap_s={self.cap_s!r}, jitter={self.jitter!r}, min_s={self.min_s!r}"
            )
        if not (0 <= self.min_s <= self.cap_s) or self.base_s < 0:
            raise InvalidOption(
                f"backoff needs 0 <= min_s <= cap_s and base_s >= 0, got base_s={self.base_s}, "
                f"min_s={self.min_s}, cap_s={self.cap_s}"
            )
        if not 0 <= self.jitter <= 1:
            raise InvalidOption(f"backoff jitter is a fraction in 0..1, got {self.jitter}")

    def delay_s(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return backoff_delay_s(retry, self.base_s, self.cap_s, self.jitter, self.min_s, rng)


def exponential_s(n: int, base_s: float, cap_s: float, min_s: float = 0.0) -> float:
    """``base_s * 2 ** (n - 1)`` clamped to ``[min_s, cap_s]``: the one exponential doubling
    (retry backoff, result polling, worker-process restarts).

    >>> exponential_s(1, 0.001, 0.05), exponential_s(4, 0.001, 0.05), exponential_s(99, 0.001, 0.05)
    (0.001, 0.008, 0.05)
    """
    exponent = min(max(n, 1) - 1, 64)  # 2**64 s is past any cap; avoids float overflow
    return min(cap_s, max(min_s, base_s * 2.0**exponent))


def backoff_delay_s(
    retry: int,
    base_s: float = DEFAULT_BASE_S,
    cap_s: float = DEFAULT_CAP_S,
    jitter: float = DEFAULT_JITTER,
    min_s: float = DEFAULT_MIN_S,
    rng: random.Random | None = None,
) -> float:
    """Delay before retry ``retry`` (1-based): exponential, jittered, within ``[min_s, cap_s]``.

    >>> backoff_delay_s(1, jitter=0)
    1.0
    >>> backoff_delay_s(4, jitter=0)
    8.0
    >>> backoff_delay_s(30, jitter=0)
    300.0
    """
    if retry < 1:
        raise InvalidOption(f"retry numbers start at 1, got {retry}")
    raw = exponential_s(retry, base_s, cap_s, min_s)
    spread = raw * jitter * (rng or random).random()
    return min(cap_s, max(min_s, raw - spread))


def backoff_bounds_s(
    retry: int,
    base_s: float = DEFAULT_BASE_S,
    cap_s: float = DEFAULT_CAP_S,
    jitter: float = DEFAULT_JITTER,
    min_s: float = DEFAULT_MIN_S,
) -> tuple[float, float]:
    """The (lowest, highest) delay :func:`backoff_delay_s` can return for ``retry``."""
    raw = exponential_s(retry, base_s, cap_s, min_s)
    return min(cap_s, max(min_s, raw * (1 - jitter))), raw
