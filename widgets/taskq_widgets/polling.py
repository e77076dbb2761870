"""A background poller: calls a function every few tenths of a second in a daemon thread.

The kernel stays free (the thread waits on a :class:`threading.Event`, never a sleep loop
in a cell), :meth:`Poller.stop` ends it at once and joins it, and every poller still
running is stopped at interpreter exit. An exception in the polled function never kills
the thread or reaches the kernel: it goes to ``on_error`` and polling goes on, so a widget
can show "Redis is gone" and recover when it is back.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Callable

from taskq import InvalidOption

_live: weakref.WeakSet[Poller] = weakref.WeakSet()


def _stop_all_at_exit() -> None:
    for poller in list(_live):
        poller.stop(timeout_s=1.0)


atexit.register(_stop_all_at_exit)


def check_interval_s(interval_s: float) -> float:
    """A polling interval: a number of seconds in (0, 3600]."""
    if isinstance(interval_s, bool) or not isinstance(interval_s, (int, float)) or not 0 < interval_s <= 3600:
        raise InvalidOption(f"interval_s must be a number of seconds in (0, 3600], got {interval_s!r}")
    return float(interval_s)


class Poller:
    """Calls ``poll()`` every ``interval_s`` seconds in a daemon thread until stopped."""

    def __init__(
        self,
        poll: Callable[[], None],
        interval_s: float,
        *,
        on_error: Callable[[BaseException], None],
        name: str = "taskq-widgets-poll",
    ) -> None:
        self.poll = poll
        self.interval_s = check_interval_s(interval_s)
        self.on_error = on_error
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start polling (nothing happens if it already runs)."""
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._main, args=(self._stop,), name=self.name, daemon=True)
            _live.add(self)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop polling and wait for the thread to end (at most ``timeout_s``)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            _live.discard(self)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _main(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - shown by the widget, never raised in a thread
                self.on_error(exc)
            stop.wait(self.interval_s)


__all__ = ["Poller", "check_interval_s"]
