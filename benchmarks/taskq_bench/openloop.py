"""The open-loop send schedule: task i is due at ``t0 + i / rate``, whatever the system does.

A closed-loop load generator waits for each send to return before the next one, so a
slow system slows its own load and hides its worst latencies ("coordinated omission").
Here the schedule is fixed in advance; each send is started at its due time as a task of
its own (sync clients run in a thread pool), and a late or slow send delays nothing
else. Latency is always measured from the *intended* time, so even a producer that falls
behind cannot flatter the system. Only ``max_in_flight`` bounds the sends outstanding at
once (memory); a send held back by it is recorded as late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

#: ``send(intended_time)``: enqueue one task that carries its intended send time.
Send = Callable[[float], Awaitable[None]]
#: A blocking ``send(intended_time)``, for clients without asyncio.
SyncSend = Callable[[float], None]

#: asyncio sleeps in whole milliseconds (epoll) and may overshoot by one: sleep on the loop
#: until this close to the due time, then in short blocking naps (no spinning), letting the
#: loop run what is ready between naps.
_COARSE_MARGIN_S = 0.003
_NAP_S = 0.00005


@dataclass(frozen=True, slots=True)
class Schedule:
    """Tasks ``offset, offset + stride, …`` below ``count`` of a global schedule at ``rate_per_s``.

    ``stride`` producers with offsets ``0 … stride - 1`` share one schedule between them.
    """

    rate_per_s: float
    count: int
    t0: float
    offset: int = 0
    stride: int = 1

    def indices(self) -> range:
        return range(self.offset, self.count, self.stride)

    def intended(self, index: int) -> float:
        return self.t0 + index / self.rate_per_s

    @property
    def end(self) -> float:
        return self.intended(self.count)


@dataclass(slots=True)
class SendLog:
    """What the producer did: per send, the intended time, when it was issued and when it returned."""

    intended: list[float] = field(default_factory=list)
    issued: list[float] = field(default_factory=list)
    returned: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def lateness_ms(self) -> list[float]:
        """How late each send was issued, in ms (the producer's own lag, not the system's)."""
        return [(i - t) * 1000 for i, t in zip(self.issued, self.intended, strict=True)]


async def run_open_loop(
    schedule: Schedule,
    send: Send,
    *,
    max_in_flight: int = 2000,
    clock: Callable[[], float] = time.time,
) -> SendLog:
    """Issue every send of ``schedule`` at its intended time (never waiting for earlier ones)."""
    log = SendLog()
    slots = asyncio.Semaphore(max_in_flight)
    pending: set[asyncio.Task[None]] = set()
    for index in schedule.indices():
        intended = schedule.intended(index)
        await _sleep_until(intended, clock)
        await slots.acquire()
        task = asyncio.create_task(_send_one(send, intended, log, slots, clock))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(0)  # let the send go out now (and replies be read) before the next nap
    if pending:
        await asyncio.gather(*pending)
    return log


async def _sleep_until(when: float, clock: Callable[[], float]) -> None:
    delay = when - clock()
    if delay > _COARSE_MARGIN_S:
        await asyncio.sleep(delay - _COARSE_MARGIN_S)
    while (delay := when - clock()) > 0:
        time.sleep(min(delay, _NAP_S))
        # Run what became ready meanwhile: replies, and sends a client hands to a task of its
        # own (taskq's async client batches concurrent sends so). Without this, such a send
        # waited for the next due time, up to 3 ms: 1 ms of every P50 at 1,000/s.
        await asyncio.sleep(0)


async def _send_one(
    send: Send, intended: float, log: SendLog, slots: asyncio.Semaphore, clock: Callable[[], float]
) -> None:
    issued = clock()
    try:
        await send(intended)
    except Exception as exc:  # noqa: BLE001 - counted and reported; one failed send must not stop the run
        log.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        log.intended.append(intended)
        log.issued.append(issued)
        log.returned.append(clock())
        slots.release()


def threaded(send: SyncSend, pool: ThreadPoolExecutor) -> Send:
    """An async send that runs the blocking ``send`` in ``pool``."""

    async def run(intended: float) -> None:
        await asyncio.get_running_loop().run_in_executor(pool, send, intended)

    return run
