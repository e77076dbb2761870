"""The sans-IO shapes every operation is written in, and that both executors run.

* :class:`Command`: one Redis command (an EVALSHA carries its :class:`~taskq.scripts.Script`,
  so a NOSCRIPT reply can be healed).
* :class:`Plan`: commands to send together (one call, or one pipeline) and how to read
  their replies.
* :data:`Flow`: a generator that yields plans (the executor sends back each one's result)
  or seconds to sleep (it sends back None), and returns a value: a multi-step operation.
  A flow may also yield :class:`Emit` items: the executor hands their values out to its
  caller as they come (``SyncExecutor.stream`` / ``AsyncExecutor.stream``), which is how
  the events stream is one generator for both clients.

This module imports nothing of taskq but the script type, so :mod:`taskq.ops` and
:mod:`taskq.telemetry` can both build plans without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from taskq.scripts import Script

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command. ``script`` is set for EVALSHA, so a NOSCRIPT reply can be healed.

    ``node_key``: on a Redis Cluster, send this command on one connection to the master that
    owns this key's slot, in order with the plan's other commands for that master, bypassing
    the cluster client's routing (a keyless ``WAIT`` must follow the writes it waits for, on
    their connection: :mod:`taskq.durable`). A plan uses it for all of its commands or none."""

    args: tuple[Any, ...]
    script: Script | None = None
    node_key: str | None = None


@dataclass(frozen=True, slots=True)
class Plan(Generic[T]):
    """Commands to send together, and how to read their replies.

    With ``errors_inline`` the replies handed to ``parse`` may include exception objects
    (one per failed command); otherwise the executor raises the first error.
    """

    commands: list[Command]
    parse: Callable[[list[Any]], T]
    errors_inline: bool = False


@dataclass(frozen=True, slots=True)
class Emit(Generic[T]):
    """Yielded by a streaming flow: hand ``items`` to the caller, then carry on."""

    items: list[T]


#: A multi-step operation: yields plans (or seconds to sleep), returns a value.
Flow = Generator["Plan[Any] | float", Any, T]
#: A flow that never ends by itself and yields its output as it comes (:class:`Emit`).
Stream = Generator["Plan[Any] | float | Emit[T]", Any, None]

__all__ = ["Command", "Emit", "Flow", "Plan", "Stream"]
