"""The script registry: loads every ``lua/*.lua`` file once, and the one table that maps
script error codes to typed exceptions.

A script may include shared helpers with a line ``--!include lib/NAME.lua``; the
registry splices the file in before computing the script's SHA1. Scripts are run with
EVALSHA; a server that does not know a script (restart, SCRIPT FLUSH) gets it loaded
again by the executor (see :mod:`taskq.ops`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from taskq import errors

_INCLUDE_RE = re.compile(r"^--!include (\S+)$", re.MULTILINE)

#: Error codes scripts return as ``TASKQ <CODE> <message>``, and the exception each maps to.
SCRIPT_ERRORS: dict[str, type[errors.TaskqError]] = {
    "LEASE_LOST": errors.LeaseLost,
    "NOT_FOUND": errors.TaskNotFound,
    "NOT_CANCELLABLE": errors.NotCancellable,
    "DUPLICATE_ID": errors.InvalidOption,
    "INVALID": errors.WorkflowCycle,
    "WF_CHANGED": errors.InvalidOption,
}


@dataclass(frozen=True, slots=True)
class Script:
    """One Lua script: its name, full source (includes spliced in) and SHA1."""

    name: str
    source: str
    sha: str


def _read(relative: str) -> str:
    return resources.files("taskq").joinpath("lua", relative).read_text(encoding="utf-8")


def _expand(source: str) -> str:
    return _INCLUDE_RE.sub(lambda m: _read(m.group(1)), source)


@cache
def load_script(name: str) -> Script:
    """The script ``lua/<name>.lua``, loaded and expanded once per process."""
    source = _expand(_read(f"{name}.lua"))
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "extend",
    "release",
    "requeue_expired",
    "promote_due",
    "cancel",
    "redrive",
    "purge_dead",
    "snapshot",
    "list_page",
    "inspect",
    "heartbeat",
    "schedule_tick",
    "wf_submit",
    "wf_cancel",
    "progress",
)


def all_scripts() -> list[Script]:
    return [load_script(name) for name in SCRIPT_NAMES]


def error_from_reply(message: str) -> errors.TaskqError | None:
    """Map a script error reply (``TASKQ CODE text``) to its exception, or None if not ours."""
    if not message.startswith("TASKQ "):
        return None
    _, _, rest = message.partition(" ")
    code, _, text = rest.partition(" ")
    cls = SCRIPT_ERRORS.get(code)
    if cls is None:
        return errors.ScriptError(message)
    return cls(text or code)
