"""A task call written down for later: :class:`Signature` (``add.s(1, 2)``), the building
block of workflows (:mod:`taskq.workflows`). No I/O, and only the errors of taskq imported, so
:mod:`taskq.registry` can hand them out from ``TaskFunction.s``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from taskq.errors import InvalidOption

#: The enqueue options a signature may carry (a workflow node has no delay or idempotency key).
SIGNATURE_OPTIONS = frozenset({"queue", "priority", "max_retries", "timeout_s", "result_ttl_s", "meta"})


@dataclass(frozen=True, slots=True)
class Signature:
    """Task ``name`` with its arguments and enqueue options, not queued yet.

    In a chain, each step after the first gets the previous step's result as its first
    argument, in front of its own; a group's callback gets the list of the members' results.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def set(self, **options: Any) -> Signature:
        """The same call with enqueue options (queue, priority, max_retries, timeout_s,
        result_ttl_s, meta) added."""
        unknown = set(options) - SIGNATURE_OPTIONS
        if unknown:
            raise InvalidOption(
                f"a workflow node takes only {', '.join(sorted(SIGNATURE_OPTIONS))}; got {', '.join(sorted(unknown))}"
            )
        return replace(self, options=MappingProxyType({**self.options, **options}))

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}.s({', '.join(parts)})"


def signature(name: str, *args: Any, **kwargs: Any) -> Signature:
    """A signature of a task known by name only (``tq.enqueue`` style)."""
    return Signature(name, args, MappingProxyType(dict(kwargs)))
