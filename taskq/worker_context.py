"""What a worker's task sees of itself (:class:`TaskContext`, :func:`current_task`), and
which queues a worker serves in what order (:class:`QueueSelection`). No I/O."""

from __future__ import annotations

import contextvars
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from taskq.errors import InvalidOption
from taskq.keys import check_queue_name
from taskq.progress import progress_json


@dataclass(slots=True)
class TaskContext:
    """The running task, as seen from inside it: ``taskq.current_task()``."""

    id: str
    queue: str
    name: str
    attempt: int
    worker_id: str
    lease_token: str
    """Unique to this attempt: pass it along to fence side effects outside Redis."""
    aborted: bool = False
    """True once cancellation was requested (or the lease was lost): a sync task should
    check it now and then, and return early."""
    meta: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """The labels given at enqueue (``meta=``), read-only; empty when none were."""
    _report: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Report how far the task got: ``tq.get(id).progress``, the snapshot's running tasks
        and a ``progress`` event show it. Cheap to call in a tight loop: the worker writes at
        most one value per 0.5 s per task (always the latest). Bad values raise InvalidOption."""
        value = progress_json(done, total, message)
        if self._report is not None:
            self._report(value)


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar("taskq_current_task", default=None)


def current_task() -> TaskContext | None:
    """The task being run by this thread or coroutine, or None outside a task."""
    return _current.get()


def check_heartbeat_s(lease_s: float, heartbeat_s: float | None) -> float:
    """The worker's heartbeat interval, checked against its lease; ``None`` means lease_s / 3.

    Each heartbeat extends the leases of the running tasks, so it must come well inside a
    lease: at most lease_s / 2 leaves one missed or late beat of slack before a healthy task
    loses its lease and runs twice. Zero would be a busy loop on Redis.
    """
    if heartbeat_s is None:
        return lease_s / 3
    if isinstance(heartbeat_s, bool) or not isinstance(heartbeat_s, (int, float)):
        raise InvalidOption(f"heartbeat_s must be a number of seconds, got {heartbeat_s!r}")
    if not math.isfinite(heartbeat_s) or heartbeat_s <= 0:
        raise InvalidOption(
            f"heartbeat_s must be finite and > 0 seconds (0 would poll Redis in a busy loop), got {heartbeat_s}"
        )
    if heartbeat_s > lease_s / 2:
        raise InvalidOption(
            f"heartbeat_s={heartbeat_s} must be at most lease_s / 2 = {lease_s / 2} (lease_s={lease_s}): the heartbeat "
            "extends the leases, so a slower one lets every long healthy task lose its lease and run twice"
        )
    return float(heartbeat_s)


@dataclass(frozen=True, slots=True)
class QueueSelection:
    """Which queues a worker serves, and in what order it claims from them.

    Ordered (``emails,default``): always the first queue first. Weighted
    (``emails=3,default=1``): each claim round starts at a queue drawn with probability
    proportional to its weight, so no queue is starved by another's backlog.
    """

    queues: tuple[str, ...]
    weights: tuple[int, ...] | None = None

    @classmethod
    def parse(cls, spec: str | Sequence[str] | Mapping[str, int]) -> QueueSelection:
        if isinstance(spec, str):
            parts = [p.strip() for p in spec.split(",") if p.strip()]
            if any("=" in p for p in parts):
                pairs = [p.split("=", 1) for p in parts]
                try:
                    return cls.parse({q.strip(): int(w) for q, w in pairs})
                except ValueError:
                    raise InvalidOption(f"weights must be integers, as in emails=3,default=1: {spec!r}") from None
            return cls.parse(parts)
        if isinstance(spec, Mapping):
            if not spec:
                raise InvalidOption("a worker needs at least one queue")
            for queue, weight in spec.items():
                check_queue_name(queue)
                if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                    raise InvalidOption(f"queue weight must be an integer >= 1, got {queue}={weight!r}")
            return cls(tuple(spec), tuple(spec.values()))
        queues = tuple(spec)
        if not queues:
            raise InvalidOption("a worker needs at least one queue")
        if len(set(queues)) != len(queues):
            raise InvalidOption(f"a queue is listed twice: {list(queues)}")
        for queue in queues:
            check_queue_name(queue)
        return cls(queues)

    def claim_order(self, rng: random.Random) -> Sequence[str]:
        if self.weights is None:
            return self.queues
        # Weighted random order without replacement (Efraimidis-Spirakis keys).
        keyed = sorted(zip(self.queues, self.weights, strict=True), key=lambda qw: -(rng.random() ** (1 / qw[1])))
        return [q for q, _ in keyed]
