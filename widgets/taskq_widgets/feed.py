"""EventFeed: the core's task events, read in a background thread and handed over in batches.

The thread (a :class:`~taskq_widgets.polling.Poller`) reads ``TaskQueue.events()`` every
``interval_s`` seconds from where it stopped (each queue's last cursor; at start, the
server's clock), without following, so every read returns once caught up and the thread
stops at once when asked. The widgets that use it (StateFlow, Timeline) only see
:class:`taskq.Event` objects: never a key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from taskq import Event, TaskQueue
from taskq_widgets.polling import Poller

#: Events read at most per poll: a backlog is worked off over several polls instead of
#: one long read that holds the batch back.
MAX_PER_POLL = 20_000


class EventFeed:
    """Reads the events of ``queues`` (None: every queue, new ones too) after the moment it
    was made, and calls ``handle(events)`` with each non-empty batch, in the thread."""

    def __init__(
        self,
        tq: TaskQueue,
        queues: Sequence[str] | None,
        handle: Callable[[list[Event]], None],
        interval_s: float,
        *,
        on_error: Callable[[BaseException], None],
        name: str = "taskq-widgets-events",
    ) -> None:
        self.tq = tq
        self.queues = list(queues) if queues is not None else None
        self.handle = handle
        self.read = 0
        """Events read so far."""
        self._start: str | None = None
        self._cursors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._poller = Poller(self._poll_quietly, interval_s, on_error=on_error, name=name)

    @property
    def running(self) -> bool:
        return self._poller.running

    def mark_start(self) -> None:
        """Events from now on (the server clock) are read; called once, before the first poll."""
        if self._start is None:
            taken_ms = self.tq.snapshot(self.queues, windows_s=(1,), running_limit=0, lifetime=False).taken_ms
            self._start = f"{taken_ms - 1}-18446744073709551615"

    def poll(self) -> int:
        """Read what is new now and hand it over (synchronous; the thread calls it too).
        Returns the number of events read."""
        with self._lock:
            self.mark_start()
            assert self._start is not None
            names = self.queues if self.queues is not None else self.tq.queues()
            if not names:
                return 0
            since = {q: self._cursors.get(q, self._start) for q in names}
            batch: list[Event] = []
            for event in self.tq.events(names, since, follow=False):
                batch.append(event)
                self._cursors[event.queue] = event.cursor
                if len(batch) >= MAX_PER_POLL:
                    break
            self.read += len(batch)
            if batch:  # under the lock: batches reach the widget in order
                self.handle(batch)
        return len(batch)

    def _poll_quietly(self) -> None:
        self.poll()

    def start(self) -> None:
        self._poller.start()

    def stop(self) -> None:
        self._poller.stop()

    @property
    def interval_s(self) -> float:
        return self._poller.interval_s

    @interval_s.setter
    def interval_s(self, value: float) -> None:
        self._poller.interval_s = value


__all__ = ["MAX_PER_POLL", "EventFeed"]


class Slots:
    """Worker slots from events alone: a started task takes its worker's lowest free slot,
    and frees it when its attempt ends. A slot is named ``<worker>#<n>`` (n from 0)."""

    def __init__(self) -> None:
        self._busy: dict[str, list[str | None]] = {}
        self._held: dict[str, str] = {}  # task id -> slot name

    def take(self, worker: str, task_id: str) -> str:
        """The slot ``task_id`` runs in on ``worker`` (its current one if it holds one)."""
        held = self._held.get(task_id)
        if held is not None:
            self.free(task_id)
        slots = self._busy.setdefault(worker, [])
        n = next((i for i, t in enumerate(slots) if t is None), len(slots))
        if n == len(slots):
            slots.append(task_id)
        else:
            slots[n] = task_id
        name = f"{worker}#{n}"
        self._held[task_id] = name
        return name

    def free(self, task_id: str) -> str | None:
        """Free the slot ``task_id`` held; its name (None if it held none)."""
        name = self._held.pop(task_id, None)
        if name is not None:
            worker, _, n = name.rpartition("#")
            self._busy[worker][int(n)] = None
        return name

    def holder(self, task_id: str) -> str | None:
        return self._held.get(task_id)

    def __len__(self) -> int:
        return len(self._held)


__all__ += ["Slots"]
