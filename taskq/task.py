"""The task record: a small dataclass, a status enum, derived checks. No I/O.

Also the producer-side validation of everything a task carries, so that bad input
is refused before anything is written (nothing is written half).
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from taskq.backoff import Backoff
from taskq.errors import (
    InvalidDelay,
    InvalidOption,
    InvalidPriority,
    NotSerializable,
    PayloadTooLarge,
)
from taskq.keys import TASK_ID_SEPARATOR, check_queue_name, queue_of_task_id, workflow_id_of

MIN_PRIORITY = 1
MAX_PRIORITY = 10
DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_RESULT_TTL_S = 24 * 3600
DEFAULT_DEAD_TTL_S = 7 * 24 * 3600
MAX_IDEMPOTENCY_KEY_BYTES = 512
# Ten years: the longest delay or TTL. Far larger delays overflow the millisecond due time
# the scripts write (1e300 s became "1e+303" in the record, which could then not be read back).
MAX_SPAN_S = 10 * 365 * 86400
MAX_DELAY_S = MAX_SPAN_S
MAX_META_ENTRIES = 16
MAX_META_VALUE_CHARS = 256
_META_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class TaskStatus(StrEnum):
    """Where a task is in its life: scheduled -> queued -> running -> succeeded, dead or
    cancelled; dead -> queued on re-drive (docs/ARCHITECTURE.md)."""

    SCHEDULED = "scheduled"
    WAITING = "waiting"
    """A workflow node whose parents have not all ended yet (taskq.workflows)."""
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True once the task will not run again (unless a dead task is re-driven)."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class Task:
    """A task record as stored in Redis, decoded. Times are Unix milliseconds."""

    id: str
    name: str
    queue: str
    status: TaskStatus
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    attempts: int
    max_retries: int
    enqueued_ms: int
    due_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    timeout_s: float | None = None
    worker: str | None = None
    result: Any = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    idempotency_key: str | None = None
    cancel_requested: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    meta: dict[str, str] = field(default_factory=dict)
    """Caller-supplied string labels (``enqueue(..., meta=...)``), e.g. an HTTP request id."""
    progress: dict[str, Any] | None = None
    """The last ``current_task().progress(done, total, message)`` written: {done, total, message}."""
    workflow_id: str | None = None
    """The workflow this task is a node of (chain, group, depends_on), if any."""

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @property
    def retries_left(self) -> int:
        return max(0, self.max_retries + 1 - self.attempts)

    @classmethod
    def from_hash(cls, raw: Mapping[str, str], task_id: str | None = None) -> Task:
        """Decode the Redis hash of task ``task_id`` (field names as written by enqueue.lua,
        which leaves out the id, the queue and every field at its default)."""

        def opt_int(name: str) -> int | None:
            value = raw.get(name)
            return int(value) if value not in (None, "") else None

        def opt_str(name: str) -> str | None:
            value = raw.get(name)
            return value if value not in (None, "") else None

        timeout_ms = opt_int("timeout_ms")
        result_raw = raw.get("result")
        task_id = raw.get("id") or task_id
        if not task_id:
            raise ValueError("Task.from_hash needs the task id (records do not repeat it)")
        return cls(
            id=task_id,
            name=raw["name"],
            queue=raw.get("queue") or queue_of_task_id(task_id),
            status=TaskStatus(raw["status"]),
            priority=int(raw["priority"]),
            args=json.loads(raw.get("args") or "[]"),
            kwargs=json.loads(raw.get("kwargs") or "{}"),
            attempts=int(raw.get("attempts") or 0),
            max_retries=int(raw.get("max_retries") or 0),
            enqueued_ms=int(raw["enqueued_ms"]),
            due_ms=opt_int("due_ms"),
            started_ms=opt_int("started_ms"),
            finished_ms=opt_int("finished_ms"),
            timeout_s=timeout_ms / 1000 if timeout_ms else None,
            worker=opt_str("worker"),
            result=json.loads(result_raw) if result_raw else None,
            error_type=opt_str("error_type"),
            error=opt_str("error"),
            traceback=opt_str("traceback"),
            idempotency_key=opt_str("idem"),
            cancel_requested=raw.get("cancel") == "1",
            backoff=backoff_from_record(
                raw.get("retry_base_ms"), raw.get("retry_cap_ms"), raw.get("retry_min_ms"), raw.get("retry_jitter")
            ),
            meta=decode_meta(raw.get("meta")),
            progress=json.loads(raw["progress"]) if raw.get("progress") else None,
            workflow_id=workflow_id_of(raw["wf"]) if raw.get("wf") else None,
        )


# ---------------------------------------------------------------------------
# Validation and encoding (producer side)


def check_priority(priority: object) -> int:
    """Return ``priority`` if it is an int in 1..10, else raise :class:`InvalidPriority`."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidPriority(
            f"priority must be an integer 1..10 (10 most urgent), got {priority!r} of type {type(priority).__name__}"
        )
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidPriority(f"priority must be in 1..10 (10 most urgent), got {priority}; it is never clamped")
    return priority


def check_delay_s(delay_s: object) -> float:
    if isinstance(delay_s, bool) or not isinstance(delay_s, (int, float)):
        raise InvalidDelay(f"delay_s must be a number of seconds, got {delay_s!r}")
    if not math.isfinite(delay_s) or not 0 <= delay_s <= MAX_DELAY_S:
        raise InvalidDelay(f"delay_s must be finite, >= 0 and at most {MAX_DELAY_S} (ten years), got {delay_s}")
    return float(delay_s)


def check_non_negative_int(name: str, value: object, upper: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise InvalidOption(f"{name} must be an integer in 0..{upper}, got {value!r}")
    return value


def check_positive_s(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOption(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidOption(f"{name} must be finite and > 0 seconds, got {value}")
    return float(value)


MIN_TIMEOUT_S = 0.001  # the record stores whole milliseconds, and 0 ms means "no timeout"


def check_timeout_s(timeout_s: object) -> float:
    """A task timeout in seconds, at least 1 ms: anything shorter would round to 0 ms, which the
    record reads as "no timeout", so a tiny timeout would silently become "never"."""
    value = check_positive_s("timeout_s", timeout_s)
    if value < MIN_TIMEOUT_S:
        raise InvalidOption(f"timeout_s must be at least {MIN_TIMEOUT_S} s (1 ms), got {value}")
    return value


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidOption(f"idempotency_key must be a non-empty string, got {key!r}")
    if not _is_utf8(key) or len(key.encode()) > MAX_IDEMPOTENCY_KEY_BYTES:
        raise InvalidOption(f"idempotency_key must be valid UTF-8 text of at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes")
    return key


def check_meta(meta: object) -> str:
    """Validate task metadata and return it as the record's JSON ('' when empty or None):
    a mapping of at most 16 str keys matching ``[A-Za-z0-9_.-]{1,64}`` to str values of at
    most 256 chars. Anything else raises :class:`InvalidOption`."""
    if meta is None:
        return ""
    if not isinstance(meta, Mapping):
        raise InvalidOption(f"meta must be a mapping of str to str, got {type(meta).__name__}")
    if len(meta) > MAX_META_ENTRIES:
        raise InvalidOption(f"meta may hold at most {MAX_META_ENTRIES} entries, got {len(meta)}")
    for key, value in meta.items():
        if not isinstance(key, str) or not _META_KEY.fullmatch(key):
            raise InvalidOption(f"meta keys must match [A-Za-z0-9_.-]{{1,64}}, got {key!r}")
        if not isinstance(value, str) or len(value) > MAX_META_VALUE_CHARS or not _is_utf8(value):
            raise InvalidOption(
                f"meta[{key!r}] must be valid text of at most {MAX_META_VALUE_CHARS} chars, got {value!r:.80}"
            )
    return dumps(dict(meta), "meta") if meta else ""


def decode_meta(raw: str | None) -> dict[str, str]:
    """The record's ``meta`` field (absent when the task has none) as a dict."""
    return json.loads(raw) if raw else {}


def _is_utf8(text: str) -> bool:
    """False for strings holding lone surrogates, which Redis clients cannot encode."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# One encoder for every payload: json.dumps with non-default options builds a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_ENCODE_STR = json.encoder.encode_basestring  # ensure_ascii=False, as _JSON


def _c_encoder(markers: dict[int, Any] | None) -> Any:
    """json's C encoder with ``_JSON``'s options; ``markers`` is its circular-reference memo."""
    j = _JSON
    return _C_ENCODER(  # type: ignore[misc]
        markers, j.default, _ENCODE_STR, None, j.key_separator, j.item_separator, j.sort_keys, j.skipkeys, j.allow_nan
    )


# The C encoder without a memo keeps nothing between calls, so this one serves every call and
# thread; making one per call (as JSONEncoder.iterencode does) cost about as much as encoding a
# small payload.
_FAST_ENCODER = _c_encoder(None) if _C_ENCODER is not None else None


def _encode(value: list[Any] | dict[str, Any]) -> str:
    """``_JSON.encode(value)`` for a list or dict. Without a memo a cycle recurses until
    RecursionError; only then is it encoded again with one, which raises what ``_JSON.encode``
    raises (ValueError "Circular reference detected"; RecursionError for nesting that is only deep)."""
    if _FAST_ENCODER is None:  # an interpreter without the C accelerator
        return _JSON.encode(value)
    try:
        return "".join(_FAST_ENCODER(value, 0))
    except RecursionError:
        return "".join(_c_encoder({})(value, 0))


def dumps(value: Any, what: str) -> str:
    """Encode ``value`` as compact JSON, or raise :class:`NotSerializable` saying what failed."""
    try:
        text = _encode(value) if type(value) in (list, dict) else _JSON.encode(value)
        if not text.isascii():
            text.encode()  # a lone surrogate ("\ud800") dumps fine but cannot be sent as UTF-8
        return text
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise NotSerializable(
            f"{what} must be JSON-serialisable (taskq never pickles): {exc}. "
            "Pass plain data (str, int, float, bool, None, list, dict) and rebuild objects in the task."
        ) from None


def encode_payload(args: Sequence[Any], kwargs: Mapping[str, Any], max_payload_bytes: int) -> tuple[str, str]:
    """Encode args and kwargs; raise if either is not JSON or together they are too large."""
    # Exact type checks first: the common list/tuple/dict cost no ABC isinstance walk.
    if type(args) not in (list, tuple) and (isinstance(args, (str, bytes)) or not isinstance(args, Sequence)):
        raise NotSerializable(f"args must be a list or tuple, got {type(args).__name__}")
    if (type(kwargs) is not dict and not isinstance(kwargs, Mapping)) or (
        kwargs and not all(isinstance(k, str) for k in kwargs)
    ):
        raise NotSerializable("kwargs must be a mapping with string keys")
    args_json = dumps(args if type(args) is list else list(args), "args") if args else "[]"
    kwargs_json = (dumps(kwargs if type(kwargs) is dict else dict(kwargs), "kwargs")) if kwargs else "{}"
    size = _utf8_len(args_json) + _utf8_len(kwargs_json)
    if size > max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {size} bytes, over the limit of {max_payload_bytes}: store large data "
            "elsewhere (a file, object store) and pass a reference, or raise max_payload_bytes"
        )
    return args_json, kwargs_json


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


_last_id_ns = 0
# Ids need uniqueness, not secrecy: the random module's generator (seeded from the OS at
# import and again in every forked child) costs no system call per id, where secrets did.
_id_bits = random.Random().getrandbits
# The id's last byte (pid % 256), kept rather than asked for per id (getpid is a
# system call): set again in every forked child, with the generator.
_pid_byte = os.getpid() % 256


def _reseed_ids() -> None:
    global _id_bits, _pid_byte
    _id_bits = random.Random().getrandbits
    _pid_byte = os.getpid() % 256


os.register_at_fork(after_in_child=_reseed_ids)


def new_task_id(queue: str) -> str:
    """A new task id ``queue:<time-ordered hex>``; the queue is part of the id.

    16 hex digits of nanoseconds (strictly increasing within a process, so ids sort by
    creation time and read well in listings), 8 random hex digits and 2 of the pid: two
    processes collide only by drawing the same 32 random bits in the same nanosecond.
    The last digits vary per task (telemetry samples events by them, lua/lib/common.lua).
    The 26 digits are one 13-byte number's hex, which costs half of formatting three numbers
    (the nanoseconds fill their 16 digits until the year 2554).
    """
    global _last_id_ns
    now_ns = time.time_ns()
    if now_ns <= _last_id_ns:
        now_ns = _last_id_ns + 1
    _last_id_ns = now_ns
    return f"{queue}{TASK_ID_SEPARATOR}{(now_ns << 40 | _id_bits(32) << 8 | _pid_byte).to_bytes(13).hex()}"


#: Shared by every spec without its own backoff (Backoff validates itself when built).
DEFAULT_BACKOFF = Backoff()


@functools.lru_cache(maxsize=256)
def backoff_from_record(base_ms: str | None, cap_ms: str | None, min_ms: str | None, jitter: str | None) -> Backoff:
    """A task's backoff from its record's fields (the one decoder); a field left out (the
    enqueue script leaves out the default's) is the default's."""
    if not (base_ms or cap_ms or min_ms or jitter):
        return DEFAULT_BACKOFF
    d = DEFAULT_BACKOFF
    return Backoff(
        base_s=int(base_ms) / 1000 if base_ms else d.base_s,
        cap_s=int(cap_ms) / 1000 if cap_ms else d.cap_s,
        min_s=int(min_ms) / 1000 if min_ms else d.min_s,
        jitter=float(jitter) if jitter else d.jitter,
    )


# Queue and task names already checked in this process (both checks are pure).
_checked_names: set[tuple[str, str]] = set()


def check_task_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 200 or not _is_utf8(name):
        raise InvalidOption(f"task name must be a non-empty string of at most 200 chars, got {name!r}")
    return name


def _check_names(queue: str, name: str) -> None:
    if type(queue) is str and type(name) is str and (queue, name) in _checked_names:
        return
    check_queue_name(queue)
    check_task_name(name)
    if len(_checked_names) > 10_000:
        _checked_names.clear()
    _checked_names.add((queue, name))


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of :meth:`TaskQueue.list_tasks`; pass ``next_cursor`` for the next (None: the end)."""

    tasks: list[Task]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, init=False)
class TaskSpec:
    """A validated request to enqueue one task, ready for enqueue.lua.

    Its ``__init__`` is written out rather than generated: the generated one of a frozen class
    sets each field through ``object.__setattr__``, 1.5 µs a spec on this project's machine, where
    each slot's own descriptor takes 0.9 µs (a bulk enqueue spent about 11 µs of client CPU a task)."""

    id: str
    name: str
    queue: str
    args_json: str
    kwargs_json: str
    priority: int | None  # None: the queue's default priority (configure_queue), else 5
    delay_ms: int
    max_retries: int
    timeout_ms: int
    result_ttl_s: int
    backoff: Backoff
    idempotency_key: str | None
    meta_json: str = ""  # '' for no metadata (the record then has no meta field)

    def __init__(
        self, id: str, name: str, queue: str, args_json: str, kwargs_json: str, priority: int | None, delay_ms: int,  # noqa: A002
        max_retries: int, timeout_ms: int, result_ttl_s: int, backoff: Backoff, idempotency_key: str | None,
        meta_json: str = "",
    ) -> None:  # fmt: skip
        _id(self, id)  # the slots' own setters, made below the class
        _name(self, name)
        _queue(self, queue)
        _args(self, args_json)
        _kwargs(self, kwargs_json)
        _priority(self, priority)
        _delay(self, delay_ms)
        _retries(self, max_retries)
        _timeout(self, timeout_ms)
        _ttl(self, result_ttl_s)
        _backoff(self, backoff)
        _idem(self, idempotency_key)
        _meta(self, meta_json)

    @classmethod
    def build(
        cls,
        name: str,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int | None = None,
        delay_s: float = 0.0,
        eta: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_s: float | None = None,
        result_ttl_s: int = DEFAULT_RESULT_TTL_S,
        backoff: Backoff | None = None,
        idempotency_key: str | None = None,
        meta: Mapping[str, str] | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        now_s: float | None = None,
    ) -> TaskSpec:
        """Validate everything; raise a :class:`~taskq.errors.ValidationError` subclass on bad input."""
        _check_names(queue, name)
        if priority is not None:
            check_priority(priority)
        if eta is not None:
            if delay_s:
                raise InvalidDelay("give either delay_s or eta, not both")
            if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not math.isfinite(eta):
                raise InvalidDelay(f"eta must be a Unix timestamp in seconds, got {eta!r}")
            delay_s = max(0.0, eta - (time.time() if now_s is None else now_s))
        delay = 0.0 if delay_s == 0 and type(delay_s) in (int, float) else check_delay_s(delay_s)
        if type(max_retries) is not int or not 0 <= max_retries <= 1000:
            check_non_negative_int("max_retries", max_retries, upper=1000)
        timeout_ms = 0 if timeout_s is None else int(check_timeout_s(timeout_s) * 1000)
        if type(result_ttl_s) is not int or not 0 <= result_ttl_s <= MAX_SPAN_S:
            check_non_negative_int("result_ttl_s", result_ttl_s, upper=MAX_SPAN_S)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        meta_json = check_meta(meta) if meta is not None else ""
        args_json, kwargs_json = encode_payload(args, kwargs or {}, max_payload_bytes)
        return cls(
            new_task_id(queue), name, queue, args_json, kwargs_json, priority, int(delay * 1000), max_retries,
            timeout_ms, result_ttl_s, backoff or DEFAULT_BACKOFF, idempotency_key, meta_json,
        )  # fmt: skip


# The setters of TaskSpec's slots in field order, which is __init__'s order (a test holds them equal).
(_id, _name, _queue, _args, _kwargs, _priority, _delay, _retries, _timeout, _ttl, _backoff, _idem, _meta) = (
    getattr(TaskSpec, f.name).__set__ for f in fields(TaskSpec)
)
