"""Registered task functions: what a worker may run, and the ``@tq.task`` decorator's product;
and the *published* registry: what live or recent workers said they can run.

Workers publish each task they can run (name, queue, options, a JSON schema of its
parameters) when they start and with every heartbeat, into one Redis hash
(:attr:`taskq.keys.GlobalKeys.tasks`), stamped with the server-clock time of that heartbeat.
"Recent" means published within :data:`REGISTRY_RETENTION_MS` (7 days) of now: a producer
may enqueue by name while its workers are stopped for a deploy or overnight, but a name no
worker has published for a week is forgotten (and pruned on the next read). Where two
workers publish the same name with different options, the later heartbeat wins.
"""

from __future__ import annotations

import functools
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from taskq.backoff import Backoff
from taskq.errors import InvalidArguments, InvalidOption
from taskq.keys import check_queue_name
from taskq.ratelimit import RateLimit, parse_rate
from taskq.schedule_time import check_schedule_spec
from taskq.signature import Signature
from taskq.task import DEFAULT_BACKOFF, check_non_negative_int, check_priority, check_timeout_s

P = ParamSpec("P")
R = TypeVar("R")
H = TypeVar("H", covariant=True)

#: Keyword arguments of ``TaskFunction.enqueue`` that are options, not task arguments.
ENQUEUE_OPTIONS = frozenset(
    {
        "queue",
        "priority",
        "delay_s",
        "eta",
        "idempotency_key",
        "max_retries",
        "timeout_s",
        "result_ttl_s",
        "meta",
        "depends_on",
    }
)


#: How long a published task stays known after the last worker that published it was seen.
REGISTRY_RETENTION_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RegisteredTask:
    """What live or recent workers published about a task they can run.

    ``priority=None``: the queue's default priority. ``parameters`` is a JSON schema
    (an object schema) of the function's parameters. ``last_seen_ms`` is the server-clock
    time of the last heartbeat that published it, by ``worker``.
    """

    name: str
    queue: str
    priority: int | None
    max_retries: int
    timeout_s: float | None
    parameters: dict[str, Any]
    last_seen_ms: int
    backoff: Backoff = field(default_factory=Backoff)
    result_ttl_s: int | None = None
    worker: str = ""

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidArguments` if the call cannot fit the published parameters
        (too many positional arguments, an unknown or repeated keyword, a required one missing).
        Types are not checked here: the worker's call is the judge of those."""
        properties = list(self.parameters.get("properties") or {})
        if not properties and "additionalProperties" not in self.parameters:
            return  # nothing was published about the parameters
        extra = bool(self.parameters.get("additionalProperties"))
        if len(args) > len(properties) and not extra:
            raise InvalidArguments(f"task {self.name!r} takes at most {len(properties)} arguments, got {len(args)}")
        given = set(properties[: len(args)])
        for key in kwargs:
            if key in given:
                raise InvalidArguments(f"task {self.name!r}: argument {key!r} given twice")
            if key not in properties and not extra:
                raise InvalidArguments(f"task {self.name!r} has no parameter {key!r}")
        missing = [p for p in self.parameters.get("required", []) if p not in given and p not in kwargs]
        if missing:
            raise InvalidArguments(f"task {self.name!r} is missing required arguments: {', '.join(missing)}")

    @classmethod
    def from_json(cls, name: str, raw: str) -> RegisteredTask:
        data = json.loads(raw)
        return cls(
            name=name,
            queue=data["queue"],
            priority=data.get("priority"),
            max_retries=int(data["max_retries"]),
            timeout_s=data.get("timeout_s"),
            parameters=data.get("parameters") or {},
            last_seen_ms=int(data["last_seen_ms"]),
            backoff=Backoff(**data["backoff"]) if data.get("backoff") else Backoff(),
            result_ttl_s=data.get("result_ttl_s"),
            worker=data.get("worker", ""),
        )


_PLAIN_KINDS = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
    inspect.Parameter.VAR_POSITIONAL,
    inspect.Parameter.VAR_KEYWORD,
)


@dataclass(frozen=True, slots=True)
class PlainBinder:
    """``inspect.Signature.bind``'s verdict, precomputed for a signature without
    positional-only parameters (:meth:`fits`). It only ever says yes where ``bind`` would
    bind; for anything else ``bind`` itself is asked, so its error is the one raised."""

    positional: tuple[str, ...]  # the positional-or-keyword parameters, in order
    keywords: frozenset[str]  # every name a keyword argument may take
    required: int  # how many of ``positional`` have no default (a prefix of them)
    required_keywords: tuple[str, ...]  # keyword-only parameters without a default
    any_args: bool  # *args
    any_kwargs: bool  # **kwargs

    @classmethod
    def of(cls, signature: inspect.Signature) -> PlainBinder | None:
        """The binder of ``signature``; None if it has a positional-only parameter."""
        params = list(signature.parameters.values())
        if any(p.kind not in _PLAIN_KINDS for p in params):
            return None
        empty = inspect.Parameter.empty
        positional = tuple(p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
        keyword_only = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        return cls(
            positional=positional,
            keywords=frozenset(positional) | {p.name for p in keyword_only},
            required=sum(1 for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.default is empty),
            required_keywords=tuple(p.name for p in keyword_only if p.default is empty),
            any_args=any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params),
            any_kwargs=any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params),
        )

    def fits(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        """True if ``bind(*args, **kwargs)`` binds (False: ask ``bind``, it may still)."""
        n = len(args)
        positional = self.positional
        if n > len(positional) and not self.any_args:
            return False
        if not kwargs:
            return n >= self.required and not self.required_keywords
        given = positional[:n]
        for key in kwargs:
            if type(key) is not str or key in given or (key not in self.keywords and not self.any_kwargs):
                return False
        return all(p in kwargs for p in positional[n : self.required]) and all(
            p in kwargs for p in self.required_keywords
        )


@dataclass(frozen=True, slots=True)
class TaskDef:
    """A registered task: its function and its defaults."""

    name: str
    fn: Callable[..., Any]
    queue: str
    priority: int | None
    max_retries: int
    timeout_s: float | None
    backoff: Backoff
    result_ttl_s: int | None
    signature: inspect.Signature | None = None  # None where the function has none to read
    is_async: bool = False
    rate: RateLimit | None = None  # a limit on this task name across every worker (taskq.ratelimit)
    rate_key: Callable[..., Any] | None = None  # the task's arguments -> its own limiter's key
    schedule: str | float | None = None  # a cron expression or every_s: a schedule named like the task
    #: The signature's precomputed binder (derived from ``signature``, made again with it).
    binder: PlainBinder | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "binder", PlainBinder.of(self.signature) if self.signature is not None else None)

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidArguments` if the call would not bind to the function."""
        if self.signature is None:
            return
        binder = self.binder
        if binder is not None and binder.fits(args, kwargs):
            return
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"task {self.name!r}: {exc}") from None

    def published(self, worker_id: str, seen_ms: int) -> str:
        """This task as a worker publishes it (JSON, read by :meth:`RegisteredTask.from_json`)."""
        b = self.backoff
        return json.dumps(
            {
                "queue": self.queue,
                "priority": self.priority,
                "max_retries": self.max_retries,
                "timeout_s": self.timeout_s,
                "result_ttl_s": self.result_ttl_s,
                "backoff": {"base_s": b.base_s, "cap_s": b.cap_s, "min_s": b.min_s, "jitter": b.jitter},
                "parameters": parameters_schema(self.fn, self.signature),
                "last_seen_ms": seen_ms,
                "worker": worker_id,
            },
            separators=(",", ":"),
        )


_JSON_TYPES: Mapping[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
    type(None): "null",
}


def _type_schema(annotation: Any) -> dict[str, Any]:
    """A JSON schema for one annotation; ``{}`` (anything) where it has no JSON equivalent."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a) for a in typing.get_args(annotation)]
        return {} if {} in options else {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    base = origin or annotation
    for kind in (bool, int, float, str, list, tuple, dict, type(None)):  # bool before int
        if isinstance(base, type) and issubclass(base, kind):
            schema: dict[str, Any] = {"type": _JSON_TYPES[kind]}
            args = typing.get_args(annotation)
            if kind is list and args:
                schema["items"] = _type_schema(args[0])
            return schema
    return {}


def parameters_schema(fn: Callable[..., Any], signature: inspect.Signature | None) -> dict[str, Any]:
    """A JSON schema (an object) of ``fn``'s parameters, from its signature and annotations.

    Positional and keyword parameters are properties (the order is the positional order);
    a parameter without a default is required; ``*args`` / ``**kwargs`` allow more.
    """
    if signature is None:
        return {"type": "object"}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations only lose their types
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra = False
    for p in signature.parameters.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            extra = True
            continue
        schema = _type_schema(hints.get(p.name, p.annotation))
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            try:
                json.dumps(p.default)
                schema = {**schema, "default": p.default}
            except (TypeError, ValueError):
                pass
        properties[p.name] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        out["required"] = required
    return out


def make_task_def(
    fn: Callable[..., Any],
    *,
    name: str | None,
    queue: str,
    priority: int | None,
    max_retries: int,
    timeout_s: float | None,
    backoff: Backoff | None,
    result_ttl_s: int | None,
    rate: str | RateLimit | None = None,
    rate_key: Callable[..., Any] | None = None,
    schedule: str | float | None = None,
) -> TaskDef:
    """Validate decorator options and the function's parameters."""
    check_queue_name(queue)
    limit = None if rate is None else parse_rate(rate)
    if rate_key is not None and (limit is None or not callable(rate_key)):
        raise InvalidOption("rate_key must be a function of the task's arguments, given together with rate=")
    if schedule is not None:
        check_schedule_spec(schedule)
    if priority is not None:
        check_priority(priority)
    check_non_negative_int("max_retries", max_retries, upper=1000)
    if timeout_s is not None:
        check_timeout_s(timeout_s)
    try:
        signature: inspect.Signature | None = inspect.signature(fn)
    except ValueError:  # some builtins have no signature to read
        signature = None
    clash = ENQUEUE_OPTIONS & set(signature.parameters if signature else ())
    if clash:
        raise InvalidOption(
            f"task {fn.__qualname__} has parameters named like enqueue options ({', '.join(sorted(clash))}); "
            "rename them, or enqueue it with tq.enqueue(name, args=..., kwargs=...)"
        )
    return TaskDef(
        name=name or f"{fn.__module__}.{fn.__qualname__}",
        fn=fn,
        queue=queue,
        priority=priority,
        max_retries=max_retries,
        timeout_s=timeout_s,
        backoff=backoff or DEFAULT_BACKOFF,
        result_ttl_s=result_ttl_s,
        signature=signature,
        is_async=inspect.iscoroutinefunction(fn),
        rate=limit,
        rate_key=rate_key,
        schedule=schedule,
    )


class _Enqueuer(Protocol[H]):
    def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> H: ...


class TaskFunction(Generic[P, R, H]):
    """A registered task. Call it to run it here and now; ``.enqueue(...)`` to queue it.

    ``enqueue`` takes the task's own arguments plus the keyword options ``queue``,
    ``priority``, ``delay_s``, ``eta``, ``idempotency_key``, ``meta``, ``max_retries``,
    ``timeout_s`` and ``result_ttl_s``.
    """

    def __init__(self, definition: TaskDef, owner: _Enqueuer[H]) -> None:
        self.definition = definition
        self._owner = owner
        functools.update_wrapper(self, definition.fn)

    @property
    def name(self) -> str:
        return self.definition.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.definition.fn(*args, **kwargs)  # type: ignore[no-any-return]

    def enqueue(self, *args: Any, **kwargs: Any) -> H:
        """Queue a run of this task; returns a handle (awaitable on an AsyncTaskQueue)."""
        return self._owner._enqueue_def(self.definition, args, kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """This task with these arguments, for a workflow: ``chain(fetch.s(url), parse.s())``."""
        return Signature(self.definition.name, args, MappingProxyType(dict(kwargs)))

    def __repr__(self) -> str:
        return f"<TaskFunction {self.definition.name} queue={self.definition.queue}>"
