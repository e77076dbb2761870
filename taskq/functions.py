"""Script calls as Redis Functions: ``FCALL`` of taskq's library (:func:`taskq.scripts.library`)
where the server has Redis Functions, ``EVALSHA`` where it has not. Sans-IO: the executors
(:mod:`taskq.executor`) send what this module says and hand it the replies.

What it saves, measured by the lead on redis-server 7.0.15 (this project's 2-core machine):
``EVALSHA`` of ``return 1`` behind lib/common.lua's helpers took 30 µs a call at 200 calls/s
(15 µs back to back), the same as ``FCALL`` of a function whose library holds those helpers
13 µs (3.9 µs): with EVALSHA the server makes the helpers again on every call. A task costs
three script calls (enqueue, claim, complete); ``benchmarks/script_cost.py`` measures them
both ways.

How: an executor loads the library once, before its first plan (``FUNCTION LOAD``, never
``REPLACE``: a reply that our library exists means it is loaded, by us or by another process of
the same version), and calls its check function (the globals the scripts use are there).
Loaded, every command that carries a script of the library goes as
``FCALL <function> numkeys keys... args...`` (the plan's ``EVALSHA`` arguments with a new head).
A server that refuses the load (no FUNCTION command: Redis < 7, an ACL without it, a read-only
replica) or fails the check (fakeredis: no ``struct`` in its functions) keeps EVALSHA for that
executor, logged once at DEBUG. A server that lost the library
(restart, FUNCTION FLUSH, a new primary in a cluster) answers "Function not found", which the
executor heals as it heals NOSCRIPT: load, then send only the failed commands again (a call
that was not found did not run).

The switch: ``TASKQ_FUNCTIONS=0`` in the environment (read when a client is made) keeps every
call on EVALSHA (the before/after of the benchmarks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from taskq.plan import Command
from taskq.scripts import library

#: Set to 0 (or false, no, off) to send every script call as EVALSHA.
ENV_SWITCH = "TASKQ_FUNCTIONS"

log = logging.getLogger(__name__)


def enabled() -> bool:
    """Whether the environment leaves Redis Functions on (the default)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def function_missing(reply: Any) -> bool:
    """Whether ``reply`` says the server does not have the function called (it did not run)."""
    return isinstance(reply, ResponseError) and str(reply).startswith("Function not found")


class FunctionCalls:
    """One executor's choice between FCALL and EVALSHA: ``on`` is None until the first load
    answers, then True (FCALL) or False (EVALSHA for good). ``wanted=False``: EVALSHA only."""

    __slots__ = ("heads", "load_commands", "on")

    def __init__(self, wanted: bool) -> None:
        lib = library() if wanted else None
        self.heads: dict[str, tuple[str, str]] = lib.heads if lib is not None else {}
        #: What loads the library and checks it, in order, on the server (each master of a cluster).
        self.load_commands: tuple[tuple[Any, ...], ...] = (
            (("FUNCTION", "LOAD", lib.source), ("FCALL", lib.check, 0)) if lib is not None else ()
        )
        self.on: bool | None = None if wanted else False

    def args(self, command: Command) -> tuple[Any, ...]:
        """What to send for ``command``: its FCALL when the library is loaded and holds its
        script, else its own arguments."""
        if self.on and command.script is not None:
            head = self.heads.get(command.script.sha)
            if head is not None:
                return head + command.args[2:]
        return command.args

    def loaded(self, replies: Sequence[Any]) -> bool:
        """Read the replies of :attr:`load_commands` (each server's in turn); True when every
        server has the library and passed its check. The first answer decides ``on``; an error
        that is not "already exists", or a failed check, turns FCALL off for this executor (a
        later heal that fails does too)."""
        refused = next((r for r in replies if _refused(r)), None)
        if refused is None:
            self.on = True
            return True
        if self.on is not False:
            log.debug(
                "Redis Functions not used, script calls go as EVALSHA: FUNCTION LOAD answered %s: %s",
                type(refused).__name__,
                refused,
            )
        self.on = False
        return False


def _refused(reply: Any) -> bool:
    """A reply of :attr:`FunctionCalls.load_commands` that means no FCALL: an error other than
    "already exists" (FUNCTION LOAD), or a check that did not answer 1."""
    if isinstance(reply, Exception):
        text = str(reply) if isinstance(reply, ResponseError) else ""
        return not (text.startswith("Library ") and "already exists" in text)
    return isinstance(reply, int) and reply != 1


__all__ = ["ENV_SWITCH", "FunctionCalls", "enabled", "function_missing"]
