"""The part both clients share: settings, the local and published task registries,
validation of enqueue requests. The blocking client is :mod:`taskq.client`, the asyncio one
:mod:`taskq.async_client`; both drive the flows of :mod:`taskq.flows`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from taskq.backoff import Backoff
from taskq.cluster import is_cluster_url
from taskq.connection import CLIENT_SOCKET_TIMEOUT_S
from taskq.errors import (
    InvalidOption,
    NotSerializable,
    NotSupportedOnCluster,
    UnknownTaskName,
)
from taskq.flows import enqueue_flow
from taskq.keys import DEFAULT_PREFIX, check_queue_name, queue_of_task_id
from taskq.ops import DEFAULT_EVENTS_MAXLEN, Operations
from taskq.plan import Flow
from taskq.ratelimit import RATE_KEY_META, RateLimit, rate_key_meta
from taskq.registry import ENQUEUE_OPTIONS, RegisteredTask, TaskDef, TaskFunction, make_task_def
from taskq.server import ServerInfo, find_server
from taskq.shard_reads import layout_plan
from taskq.shards import QueueDirectory
from taskq.task import (
    DEFAULT_DEAD_TTL_S,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_QUEUE,
    DEFAULT_RESULT_TTL_S,
    MAX_SPAN_S,
    TaskSpec,
    check_idempotency_key,
    check_non_negative_int,
    check_positive_s,
    check_priority,
    check_task_name,
    encode_payload,
    new_task_id,
)
from taskq.telemetry import EventReader, SnapshotHint
from taskq.workflows import (
    DAG,
    Part,
    WorkflowHandle,
    cancel_workflow_plan,
    compile_workflow,
    submit_flow,
    submit_workflow_flow,
    workflow_flow,
)

if TYPE_CHECKING:
    pass


#: The largest max_payload_bytes: a Redis string holds at most 512 MiB.
MAX_PAYLOAD_LIMIT = 512 * 1024 * 1024
#: Longest aging window: queue scores (clock_us + 9 * window_us) must stay below 2^53.
MAX_AGING_S = 30 * 86400
#: How long a client trusts its copy of the published task registry for names it finds there.
REGISTRY_CACHE_S = 2.0
#: Longest block of one event read (``events(block_s=...)``): half the clients' socket timeout.
MAX_BLOCK_S = CLIENT_SOCKET_TIMEOUT_S / 2


#: The keyword arguments of a call without any (read, never written).
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})
#: The keys an enqueue_many request may have.
_REQUEST_KEYS = ENQUEUE_OPTIONS | {"name", "args", "kwargs", "force"}
#: The entries of an enqueue_many request that a template (:meth:`ClientBase._specs_from_requests`)
#: stands for, besides meta: all but the payload, the idempotency key and eta.
_TEMPLATE_OPTIONS = ("name", "queue", "priority", "delay_s", "max_retries", "timeout_s", "result_ttl_s", "force")
#: The most templates one enqueue_many call keeps (requests past them are made one by one).
_MAX_TEMPLATES = 64


def check_payload_shape(args: object, kwargs: object) -> None:
    """``args`` a list or tuple, ``kwargs`` a mapping or None, else :class:`NotSerializable`
    (the shapes :func:`~taskq.task.encode_payload` takes, checked before anything unpacks them)."""
    if type(args) not in (list, tuple) and (isinstance(args, (str, bytes)) or not isinstance(args, Sequence)):
        raise NotSerializable(f"args must be a list or tuple, got {type(args).__name__}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise NotSerializable(f"kwargs must be a dict, got {type(kwargs).__name__}")


class ClientBase:
    """Settings, registries and validation shared by :class:`TaskQueue` and :class:`AsyncTaskQueue`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        default_queue: str = DEFAULT_QUEUE,
        events: bool = True,
        events_maxlen: int = DEFAULT_EVENTS_MAXLEN,
        events_sample: int = 1,
        telemetry: bool = True,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        result_ttl_s: int = DEFAULT_RESULT_TTL_S,
        dead_ttl_s: int = DEFAULT_DEAD_TTL_S,
        embedded: bool = True,
        durable: bool = False,
    ) -> None:
        check_queue_name(default_queue)
        if check_non_negative_int("max_payload_bytes", max_payload_bytes, upper=MAX_PAYLOAD_LIMIT) < 1:
            raise InvalidOption(f"max_payload_bytes must be >= 1, got {max_payload_bytes}")
        check_non_negative_int("result_ttl_s", result_ttl_s, upper=MAX_SPAN_S)
        if check_non_negative_int("dead_ttl_s", dead_ttl_s, upper=MAX_SPAN_S) < 1:
            raise InvalidOption("dead_ttl_s must be >= 1 s: dead tasks are kept for inspection and re-drive")
        if isinstance(events_sample, bool) or not isinstance(events_sample, int) or events_sample < 1:
            raise InvalidOption(f"events_sample must be an integer >= 1 (keep 1 task in N), got {events_sample!r}")
        #: Which server this client found or started (password redacted).
        self.server_info: ServerInfo
        self.url, self.server_info = find_server(url, embedded=embedded)
        self.default_queue = default_queue
        self.max_payload_bytes = max_payload_bytes
        self.result_ttl_s = result_ttl_s
        self.ops = Operations(
            prefix=prefix,
            events_maxlen=events_maxlen if events else 0,
            dead_ttl_s=dead_ttl_s,
            events_sample=events_sample,
            telemetry=telemetry,
            cluster=is_cluster_url(self.url),
            durable=bool(durable),
        )
        self.registry: dict[str, TaskDef] = {}
        self._published: dict[str, RegisteredTask] = {}  # the workers' registry, as last read
        self._published_at = -REGISTRY_CACHE_S
        self._known_queues = QueueDirectory()  # registered queues, and shard counts (taskq.shards)
        self._snapshot_hint = SnapshotHint()  # lets a polling dashboard snapshot in one round trip

    @property
    def prefix(self) -> str:
        return self.ops.prefix

    def _register(self, fn: Callable[..., Any], **options: Any) -> TaskDef:
        definition = make_task_def(fn, **options)
        if definition.name in self.registry and self.registry[definition.name].fn is not fn:
            raise InvalidOption(f"a different task is already registered as {definition.name!r}")
        self.registry[definition.name] = definition
        return definition

    def _spec(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay_s: float = 0.0,
        eta: float | None = None,
        idempotency_key: str | None = None,
        meta: Mapping[str, str] | None = None,
        max_retries: int | None = None,
        timeout_s: float | None = None,
        result_ttl_s: int | None = None,
        force: bool = False,
        fed: bool = False,
    ) -> TaskSpec:
        """A validated task. A name without a local ``@tq.task`` takes its options from the
        published registry (read by :meth:`_lookup_flow` first); a name in neither raises
        :class:`UnknownTaskName` unless ``force``."""
        check_payload_shape(args, kwargs)  # before a signature or a rate key looks inside them
        definition: TaskDef | RegisteredTask | None = self.registry.get(name) or self._published.get(name)
        if definition is not None:
            # a workflow node fed by its parents gets their result(s) as its first argument
            definition.check_arguments([None, *args] if fed else args, kwargs or _NO_KWARGS)
        elif not force and check_task_name(name):
            known = sorted(self.registry.keys() | self._published.keys())
            raise UnknownTaskName(
                f"no task named {name!r} is registered here or by a live or recent worker "
                f"(known: {', '.join(known) or 'none'}); register it with @tq.task, start a worker "
                "that has it first, or pass force=True"
            )
        if isinstance(definition, TaskDef) and definition.rate_key is not None:
            key = rate_key_meta(definition.rate_key(*args, **(kwargs or {})))
            meta = {**(meta or {}), RATE_KEY_META: key}
        d_queue = definition.queue if definition else self.default_queue
        return TaskSpec.build(
            name,
            args=args,
            kwargs=kwargs,
            queue=queue if queue is not None else d_queue,
            priority=priority if priority is not None else (definition.priority if definition else None),
            delay_s=delay_s,
            eta=eta,
            max_retries=max_retries
            if max_retries is not None
            else (definition.max_retries if definition else DEFAULT_MAX_RETRIES),
            timeout_s=timeout_s if timeout_s is not None else (definition.timeout_s if definition else None),
            result_ttl_s=result_ttl_s
            if result_ttl_s is not None
            else (definition.result_ttl_s if definition and definition.result_ttl_s is not None else self.result_ttl_s),
            backoff=definition.backoff if definition else None,
            idempotency_key=idempotency_key,
            meta=meta,
            max_payload_bytes=self.max_payload_bytes,
        )

    def _lookup_flow(self, names: Iterable[str], force: bool = False) -> Flow[None]:
        """Read the published task registry if a name has no local ``@tq.task`` and is not
        in a copy younger than ``REGISTRY_CACHE_S`` (an unknown name always reads it afresh,
        unless ``force``: nothing is refused then, so a fresh copy that lacks it is trusted,
        and a stream of forced enqueues is one round trip each, not two)."""
        missing: set[str] = set()
        last = object()  # no name is this
        for name in names:
            if name is not last:  # a bulk call repeats one name: checked once, not per request
                last = check_task_name(name)  # a list is no name
                if name not in self.registry:
                    missing.add(name)
        if not missing:
            return
        fresh = time.monotonic() - self._published_at < REGISTRY_CACHE_S
        if fresh and (force or missing <= self._published.keys()):
            return
        self._published = yield from self.ops.registered_tasks()
        self._published_at = time.monotonic()

    def _check_requests(self, requests: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        checked = list(requests)
        for i, req in enumerate(checked):
            if type(req) is not dict and not isinstance(req, Mapping):  # a dict: no ABC check
                raise InvalidOption(f"enqueue_many item {i} is a {type(req).__name__}, not a mapping (name, args, ...)")
            if "name" not in req:
                raise InvalidOption(f"enqueue_many item {i} has no 'name'")
            if "depends_on" in req:
                raise InvalidOption(
                    f"enqueue_many item {i}: depends_on works with tq.enqueue or a workflow (tq.submit)"
                )
            if type(req) is dict and req.keys() <= _REQUEST_KEYS:  # a set comparison, no set made
                continue
            extra = set(req) - _REQUEST_KEYS
            if extra:
                raise InvalidOption(f"enqueue_many item {i} has unknown keys: {', '.join(sorted(extra))}")
        return checked

    def _specs_from_requests(self, requests: list[Mapping[str, Any]]) -> list[TaskSpec]:
        """Each request's spec, as :meth:`_spec` makes it. A bulk call mostly repeats one name and
        one set of options: the first request with them is made by :meth:`_spec`, which checks
        everything, and its spec is the template of the later ones with the very same option
        objects (compared by identity, so ``True`` or ``1.0`` never passes for ``1``) and meta of
        equal items (:func:`_template_key`). Of those only what is their own is checked and made,
        in ``_spec``'s order, so with its errors: the arguments' shape and fit, the idempotency
        key, the payload, the id. Made one by one: a request with ``eta`` (its delay is read off
        the clock), of a task with a ``rate_key`` (it reads the arguments), or not a dict."""
        templates: dict[tuple[Any, ...], tuple[TaskDef | RegisteredTask | None, TaskSpec]] = {}
        specs: list[TaskSpec] = []
        for req in requests:
            key = _template_key(req)
            try:
                found = templates.get(key) if key is not None else None
            except TypeError:  # meta holding something unhashable: refused by _spec
                key = found = None
            if found is None:
                spec = self._spec(**req)
                definition = self.registry.get(spec.name) or self._published.get(spec.name)
                if key is not None and len(templates) < _MAX_TEMPLATES and not _reads_arguments(definition):
                    templates[key] = (definition, spec)
                specs.append(spec)
                continue
            definition, t = found
            args, kwargs = req.get("args", ()), req.get("kwargs")
            check_payload_shape(args, kwargs)
            if definition is not None:
                definition.check_arguments(args, kwargs or _NO_KWARGS)
            idempotency_key = req.get("idempotency_key")
            if idempotency_key is not None:
                check_idempotency_key(idempotency_key)
            args_json, kwargs_json = encode_payload(args, kwargs or {}, self.max_payload_bytes)
            spec = TaskSpec(
                new_task_id(t.queue), t.name, t.queue, args_json, kwargs_json, t.priority, t.delay_ms, t.max_retries,
                t.timeout_ms, t.result_ttl_s, t.backoff, idempotency_key, t.meta_json,
            )  # fmt: skip
            specs.append(spec)
        return specs

    def _spec_for_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskSpec:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ENQUEUE_OPTIONS}
        return self._spec(definition.name, args, kwargs, **options)

    def _event_reader(
        self,
        queues: Sequence[str] | None,
        since: str | Mapping[str, str] | None,
        follow: bool,
        block_s: float,
        poll_s: float,
        known: Sequence[str] = (),
        layout: Mapping[str, Sequence[str]] | None = None,
    ) -> EventReader:
        """``queues=None``: the ``known`` queues, and those created later (read from the registry).
        ``layout``: each sharded queue's physical queues (:func:`taskq.shards.layouts_flow`)."""
        # A blocking read must end well inside the connection's socket timeout (taskq.connection).
        if isinstance(block_s, bool) or not isinstance(block_s, (int, float)) or not 0 <= block_s <= MAX_BLOCK_S:
            raise InvalidOption(f"block_s must be a number of seconds from 0 to {MAX_BLOCK_S:g}, got {block_s!r}")
        block_ms = int(block_s * 1000)
        if queues is None:
            return EventReader(
                self.ops,
                known,
                since,
                block_ms=block_ms,
                poll_s=poll_s,
                follow=follow,
                discover=True,
                layout=layout,
                layout_plan=functools.partial(layout_plan, self.ops),
            )
        names = [check_queue_name(q) for q in queues] or [self.default_queue]
        return EventReader(self.ops, names, since, block_ms=block_ms, poll_s=poll_s, follow=follow, layout=layout)

    def _enqueue_def(self, definition: TaskDef, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError  # TaskQueue returns a handle, AsyncTaskQueue a coroutine of one

    # -- workflows (taskq.workflows): each returns a value, or an awaitable on AsyncTaskQueue --

    def submit(self, workflow: Part | DAG) -> Any:
        """Submit a :func:`~taskq.chain`, :func:`~taskq.group` or :class:`~taskq.DAG` in one
        script call; returns a :class:`~taskq.WorkflowHandle`. A cycle is refused
        (:class:`~taskq.WorkflowCycle`) before anything is written."""
        self._refuse_on_cluster("workflows (submit)")
        compiled = compile_workflow(workflow)

        def flow() -> Flow[WorkflowHandle]:
            yield from self._lookup_flow({n.sig.name for n in compiled})
            specs = [
                self._spec(n.sig.name, n.sig.args, dict(n.sig.kwargs), fed=n.feed != "none", **n.sig.options)
                for n in compiled
            ]
            workflow_id, sinks = yield from submit_workflow_flow(self.ops, specs, compiled, self._known_queues)
            return WorkflowHandle(workflow_id, self, [s.id for s in specs], sinks)

        return _executor(self).drive(flow())

    def _refuse_on_cluster(self, what: str) -> None:
        if self.ops.cluster:
            raise NotSupportedOnCluster(
                f"{what}: not supported on a Redis Cluster yet (workflow scripts span several queues' slots); "
                "nothing was written"
            )

    def workflow(self, workflow_id: str) -> Any:
        """A workflow's state and every node's (:class:`~taskq.WorkflowInfo`)."""
        return _executor(self).drive(workflow_flow(self.ops, workflow_id))

    def cancel_workflow(self, workflow_id: str) -> Any:
        """Cancel every node that has not run; running ones get their abort flag."""
        return _executor(self).run(cancel_workflow_plan(self.ops, workflow_id))

    def _depends_flow(self, spec: TaskSpec, depends_on: Iterable[Any]) -> Flow[str]:
        """Enqueue ``spec`` to start once every task of ``depends_on`` (handles or ids)
        succeeded; a failed one cancels it. Returns its id."""
        parents = [getattr(p, "id", p) for p in depends_on]
        for p in parents:
            if not isinstance(p, str):
                raise InvalidOption(f"depends_on takes task handles or ids, got {p!r}")
            queue_of_task_id(p)
        if not parents:
            return (yield from enqueue_flow(self.ops, [spec], self._known_queues))[0]
        self._refuse_on_cluster("depends_on")
        yield from submit_flow(self.ops, [spec], [("none", "fail", parents)], parents, self._known_queues)
        return spec.id

    def task(
        self,
        fn: Any = None,
        *,
        name: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_s: float | None = None,
        backoff: Backoff | None = None,
        result_ttl_s: int | None = None,
        rate: str | RateLimit | None = None,
        rate_key: Callable[..., Any] | None = None,
        schedule: str | float | None = None,
    ) -> Any:
        """Register a function as a task: ``@tq.task`` or ``@tq.task(queue=..., ...)``.

        Returns a :class:`TaskFunction`: call it to run the function here, ``.enqueue(...)``
        to queue it (a coroutine on an AsyncTaskQueue). ``priority=None`` uses the queue's
        default priority (``configure_queue``), else 5.

        ``rate="10/m"``: at most that many runs of this task across every worker
        (:mod:`taskq.ratelimit`); with ``rate_key=f`` (a function of the task's arguments),
        one such limit per value of ``f(*args, **kwargs)``, e.g. per customer.
        ``schedule="*/5 * * * *"`` (cron, UTC) or ``schedule=30`` (seconds): workers run it
        periodically, with no arguments, under a schedule named like the task
        (:mod:`taskq.schedules`).
        """
        options = {
            "name": name,
            "queue": queue or self.default_queue,
            "priority": priority,
            "max_retries": max_retries,
            "timeout_s": timeout_s,
            "backoff": backoff,
            "result_ttl_s": result_ttl_s,
            "rate": rate,
            "rate_key": rate_key,
            "schedule": schedule,
        }

        def decorator(f: Callable[..., Any]) -> Any:
            return TaskFunction(self._register(f, **options), self)

        return decorator(fn) if fn is not None else decorator


def _executor(client: ClientBase) -> Any:
    """The client's executor (each client sets its own: sync, or async whose calls are awaited)."""
    return client._exec  # type: ignore[attr-defined]


def _template_key(req: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What makes two enqueue_many requests resolve alike (:meth:`ClientBase._specs_from_requests`):
    the identity of each of their :data:`_TEMPLATE_OPTIONS` (alive as long as the requests, so
    no id is reused meanwhile) and their meta's items (a literal per request is the usual form;
    equal text gives equal JSON). None: this request is made on its own."""
    if type(req) is not dict or "eta" in req:
        return None
    ids = tuple(map(id, map(req.get, _TEMPLATE_OPTIONS)))
    meta = req.get("meta")
    if meta is None:
        return ids
    return (ids, tuple(meta.items())) if type(meta) is dict else None


def _reads_arguments(definition: TaskDef | RegisteredTask | None) -> bool:
    """Whether the task's spec depends on its arguments beyond their JSON: its rate_key's meta."""
    return isinstance(definition, TaskDef) and definition.rate_key is not None


def check_queue_settings(
    queue: str, aging_s: float | None, default_priority: int | None
) -> tuple[str, float | None, int | None]:
    check_queue_name(queue)
    if aging_s is not None:
        check_positive_s("aging_s", aging_s)
        if aging_s > MAX_AGING_S:
            raise InvalidOption(f"aging_s is at most {MAX_AGING_S} s (30 days); for strict priority pass aging_s=None")
    if default_priority is not None:
        check_priority(default_priority)
    return queue, aging_s, default_priority


def queue_list(queues: str | Sequence[str] | None) -> list[str] | None:
    """None (every queue), or the queue names checked: one name or a sequence of them."""
    if queues is None:
        return None
    if isinstance(queues, str) or not isinstance(queues, Iterable):
        return [check_queue_name(queues)]  # a str, or refused by the check
    return [check_queue_name(q) for q in queues]
