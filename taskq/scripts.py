"""The script registry: loads every ``lua/*.lua`` file once, and the one table that maps
script error codes to typed exceptions.

A script may include shared helpers with a line ``--!include lib/NAME.lua``; the
registry splices the file in before computing the script's SHA1. Scripts are run with
EVALSHA; a server that does not know a script (restart, SCRIPT FLUSH) gets it loaded
again by the executor (see :mod:`taskq.executor`).

The same files also make one Redis Functions *library* (:func:`library`, Redis 7+), which the
executors call with FCALL where the server has it (:mod:`taskq.functions`). With EVALSHA every
call makes the included helpers afresh (the "prelude", ~1 k Lua instructions per helper); the
library makes them once, when it is loaded: each included file once at its top, then one
function per script, called with ``(KEYS, ARGV)``, whose body is the script's text after its
includes, unchanged. So the EVALSHA source and the function are the same Lua text, and
everything a script's body makes is made per call, as with EVALSHA; only the includes'
top-level locals live across calls (and are shared by every function), so they must hold no
per-call state (lib/workflow.lua keeps its per-call contexts in a table the script makes). The
library's load runs without the standard library (Redis 7.0 gives it no ``math``, ``string``,
``table``): top-level code of an include may only define functions and literal constants.

The library and function names carry a hash of the library's text, so two taskq versions
share a server during a rolling upgrade, each calling its own functions; a library is never
replaced, only added.
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


@dataclass(frozen=True, slots=True)
class Library:
    """Every script of :data:`SCRIPT_NAMES` as one Redis Functions library (module docstring).

    ``heads``: per script SHA1, the start of its FCALL (``("FCALL", function name)``), which
    replaces ``("EVALSHA", sha)`` in front of the same numkeys, keys and arguments. ``check``:
    a function of no keys that returns 1 where the functions have every global the scripts use
    (:data:`_GLOBALS`)."""

    name: str
    source: str
    functions: dict[str, str]
    heads: dict[str, tuple[str, str]]
    check: str


#: The Lua globals the scripts use beyond the base library. snapshot.lua tests ``if struct``,
#: which a server whose functions raise on a missing global (fakeredis 2.41, though its EVAL
#: has no ``struct`` and says nil) would fail at run time: the library's check touches each.
_GLOBALS = ("cjson", "math", "string", "struct", "table", "unpack")


def _split(name: str) -> tuple[list[str], str]:
    """The files ``lua/<name>.lua`` includes, and the rest of it (after its last include line)."""
    raw = _read(f"{name}.lua")
    includes = [m.group(1) for m in _INCLUDE_RE.finditer(raw)]
    cut = max((m.end() for m in _INCLUDE_RE.finditer(raw)), default=0)
    return includes, raw[cut:]


#: Redis refuses a function without flags when it is at ``maxmemory``, where it refuses an
#: EVALSHA only at its first write of a command that may grow memory (HSET, ZADD; not DEL, ZREM,
#: ZPOPMIN). What one needs on a full Redis must still run as FCALL: the reading scripts say
#: ``no-writes``; those that free memory or show what fills it (purging dead tasks, cancelling,
#: the snapshot, which writes a little telemetry) say ``allow-oom``, and run as their EVALSHA
#: did there. Every other function is refused whole on a full Redis, before it writes anything.
_FLAGS = {
    "list_page": "no-writes",
    "inspect": "no-writes",
    "snapshot": "allow-oom",
    "purge_dead": "allow-oom",
    "cancel": "allow-oom",
    "wf_cancel": "allow-oom",
}


def _functions(lib_name: str, bodies: dict[str, str]) -> str:
    def register(name: str, body: str) -> str:
        flags = f"{{'{_FLAGS[name]}'}}" if name in _FLAGS else "{}"
        return (
            f"redis.register_function{{function_name='{lib_name}_{name}', flags={flags},\n"
            f"callback=function(KEYS, ARGV)\n{body}\nend}}\n"
        )

    scripts = "".join(register(name, body) for name, body in bodies.items())
    touched = ", ".join(_GLOBALS)
    return f"{scripts}redis.register_function('{lib_name}_check', function() local _ = {{{touched}}} return 1 end)\n"


@cache
def library() -> Library:
    """The library of every script, generated once per process: each included file once at
    its top (in the order the scripts include them), then one function per script whose body
    is the script's text after its includes."""
    includes: dict[str, None] = {}
    bodies: dict[str, str] = {}
    for name in SCRIPT_NAMES:
        used, bodies[name] = _split(name)
        includes.update(dict.fromkeys(used))
    helpers = "".join(_read(path) + "\n" for path in includes)
    lib_name = "taskq_" + hashlib.sha1((helpers + _functions("taskq", bodies)).encode()).hexdigest()[:12]
    source = f"#!lua name={lib_name}\n{helpers}{_functions(lib_name, bodies)}"
    functions = {name: f"{lib_name}_{name}" for name in SCRIPT_NAMES}
    heads = {load_script(name).sha: ("FCALL", fn) for name, fn in functions.items()}
    return Library(lib_name, source, functions, heads, f"{lib_name}_check")


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
