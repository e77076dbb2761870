"""What every live widget shares: a background runner (a :class:`~taskq_widgets.polling.Poller`
or an :class:`~taskq_widgets.feed.EventFeed`) started and stopped with the widget, its interval
following the ``interval_s`` trait, errors shown in the ``error`` trait rather than raised in the
kernel, and the client closed with the widget when the widget made it.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import anywidget
import traitlets

from taskq import InvalidOption, TaskQueue
from taskq_widgets.polling import check_interval_s

W = TypeVar("W", bound="LiveWidget")


class Runner(Protocol):
    """A background thread the widget starts and stops (Poller, EventFeed)."""

    interval_s: float

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LiveWidget(anywidget.AnyWidget):
    """Base of the live widgets. A subclass declares the ``error``, ``polling`` and
    ``interval_s`` traits, and in ``__init__`` sets ``tq``, ``_owns_client``, ``_closed`` and
    ``_runner``; :meth:`_close_parts` closes anything else it made (controls)."""

    tq: TaskQueue
    _runner: Runner
    _owns_client: bool
    _closed: bool

    def _show_error(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"

    def start(self: W) -> W:
        """Start reading live in a background thread (nothing happens if it already runs)."""
        if self._closed:
            raise InvalidOption(f"this {type(self).__name__} was closed; make a new one")
        self._runner.start()
        self.polling = True
        return self

    def stop(self) -> None:
        """Stop reading and wait for the background thread to end."""
        self._runner.stop()
        self.polling = False

    @property
    def thread_alive(self) -> bool:
        """True while the background thread runs."""
        return self._runner.running

    @traitlets.observe("interval_s")
    def _interval_changed(self, change: dict[str, Any]) -> None:
        if "_runner" in self.__dict__:
            self._runner.interval_s = check_interval_s(change["new"])

    def _close_parts(self) -> None:
        """Close what the subclass made besides the runner (nothing by default)."""

    def close(self) -> None:
        """Stop reading, close the widget (and the client, if the widget made it)."""
        if "_runner" in self.__dict__:  # else __init__ refused its arguments: nothing to stop
            self._closed = True
            self.stop()
            self._close_parts()
            if self._owns_client:
                self.tq.close()
        super().close()
