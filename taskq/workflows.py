"""Workflows: :func:`chain`, :func:`group` (with a callback: a chord), :class:`DAG`, and the
``depends_on=`` of ``tq.enqueue``. No I/O: the shapes, their compilation into nodes, and the
plans and flows the clients drive (``tq.submit``, ``tq.workflow``, ``tq.cancel_workflow``).

Every node is a task. A node waits (status ``waiting``) until each of its parents ended; the
script that ends the last parent releases it into its queue in the same call
(``lua/lib/workflow.lua``), so no crash can lose or double a callback, and a retried parent is
counted once. docs/ARCHITECTURE.md, "Workflows".
"""

from __future__ import annotations

import graphlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from taskq.errors import InvalidOption, TaskNotFound, WorkflowCycle, WorkflowNotFound
from taskq.keys import WorkflowKeys, queue_of_task_id, workflow_id_of
from taskq.ops import Operations
from taskq.ops_base import reply_error, script_call
from taskq.plan import Command, Flow, Plan
from taskq.signature import Signature, signature
from taskq.task import DEFAULT_BACKOFF, Task, TaskSpec

__all__ = [
    "DAG",
    "Chain",
    "Group",
    "OnError",
    "Signature",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowNode",
    "chain",
    "group",
    "signature",
]

#: What a group's callback does when a member failed: be cancelled ("fail"), or run with the
#: error in the member's place ({"error_type", "error", "task_id"}) ("pass").
OnError = Literal["fail", "pass"]
Feed = Literal["none", "prev", "all"]


@dataclass(frozen=True, slots=True)
class Chain:
    """Steps run one after another; each gets the previous one's result as its first argument.
    A failed step cancels the rest (``error_type`` ParentFailed names the cause)."""

    steps: tuple[Signature | Chain | Group, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """Members run in parallel; the optional callback runs once after every member ended, with
    the list of their results in member order."""

    members: tuple[Signature | Chain | Group, ...]
    callback: Signature | None = None
    on_error: OnError = "fail"


Part = Signature | Chain | Group


def chain(*steps: Part) -> Chain:
    """``chain(fetch.s(url), parse.s(), store.s())``."""
    if not steps:
        raise InvalidOption("a chain needs at least one step")
    return Chain(tuple(_check_part(s) for s in steps))


def group(*members: Part | Iterable[Part], callback: Signature | None = None, on_error: OnError = "fail") -> Group:
    """``group(count.s(a), count.s(b), callback=merge.s())`` (a list of members works too)."""
    flat: list[Part] = []
    for m in members:
        flat.extend(m if not isinstance(m, (Signature, Chain, Group)) else [m])
    if not flat:
        raise InvalidOption("a group needs at least one member")
    if on_error not in ("fail", "pass"):
        raise InvalidOption(f"on_error must be 'fail' or 'pass', got {on_error!r}")
    if callback is not None and not isinstance(callback, Signature):
        raise InvalidOption("a group's callback is one task signature (task.s(...))")
    return Group(tuple(_check_part(m) for m in flat), callback, on_error)


def _check_part(part: object) -> Part:
    if not isinstance(part, (Signature, Chain, Group)):
        raise InvalidOption(f"a workflow step is a signature (task.s(...)), chain or group, not {part!r}")
    return part


class DAG:
    """Named nodes with dependencies, any shape: ``dag.add("b", parse.s(), after=["a"])``.
    Names may be added in any order; a cycle, or a name that is never added, is refused at
    submit (:class:`WorkflowCycle`). ``results=True``: the node gets the list of its parents'
    results as its first argument."""

    def __init__(self) -> None:
        self.nodes: dict[str, tuple[Signature, tuple[str, ...], bool, OnError]] = {}

    def add(
        self, name: str, sig: Signature, *, after: Sequence[str] = (), results: bool = False, on_error: OnError = "fail"
    ) -> DAG:
        if name in self.nodes:
            raise InvalidOption(f"DAG node {name!r} is added twice")
        if not isinstance(sig, Signature):
            raise InvalidOption(f"DAG node {name!r} must be a task signature (task.s(...))")
        if on_error not in ("fail", "pass"):
            raise InvalidOption(f"on_error must be 'fail' or 'pass', got {on_error!r}")
        self.nodes[name] = (sig, tuple(after), results, on_error)
        return self

    def order(self) -> list[str]:
        """The names, parents first; raises :class:`WorkflowCycle`."""
        for name, (_, after, _, _) in self.nodes.items():
            missing = [p for p in after if p not in self.nodes]
            if missing:
                raise WorkflowCycle(f"DAG node {name!r} depends on {', '.join(map(repr, missing))}, never added")
        sorter = graphlib.TopologicalSorter({n: spec[1] for n, spec in self.nodes.items()})
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as exc:
            raise WorkflowCycle(f"the DAG has a cycle: {' -> '.join(map(str, exc.args[1]))}") from None


@dataclass(slots=True)
class Node:
    """One node as compiled: its signature, parent node indexes, what it is fed, its policy."""

    sig: Signature
    parents: list[int]
    feed: Feed
    policy: OnError
    name: str = ""


def compile_workflow(workflow: Part | DAG) -> list[Node]:
    """The nodes of a workflow, parents before children."""
    nodes: list[Node] = []
    if isinstance(workflow, DAG):
        index: dict[str, int] = {}
        for name in workflow.order():
            sig, after, results, on_error = workflow.nodes[name]
            index[name] = len(nodes)
            feed: Feed = "all" if results else "none"
            nodes.append(Node(sig, [index[p] for p in after], feed, on_error, name))
        return nodes
    _compile(_check_part(workflow), [], "none", "fail", nodes)
    return nodes


def _compile(part: Part, after: list[int], feed: Feed, policy: OnError, nodes: list[Node]) -> list[int]:
    """Add ``part`` after the nodes ``after``; returns its exit nodes."""
    if isinstance(part, Signature):
        nodes.append(Node(part, list(after), feed if after else "none", policy))
        return [len(nodes) - 1]
    if isinstance(part, Chain):
        exits = after
        for i, step in enumerate(part.steps):
            step_feed: Feed = feed if i == 0 else ("prev" if len(exits) == 1 else "all")
            exits = _compile(step, exits, step_feed, policy if i == 0 else "fail", nodes)
        return exits
    exits = []
    for member in part.members:
        exits += _compile(member, after, feed, policy, nodes)
    if part.callback is None:
        return exits
    return _compile(part.callback, exits, "all", part.on_error, nodes)


# -- what tq.workflow(id) shows -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowNode:
    """One node of a workflow: its task (None once the record expired), parents, and outcome."""

    id: str
    parents: list[str]
    feed: str
    policy: str
    settled: str | None
    task: Task | None

    @property
    def status(self) -> str:
        return self.task.status.value if self.task else (self.settled or "expired")


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow's state (running, succeeded, failed, cancelled) and every node's."""

    id: str
    state: str
    total: int
    created_ms: int
    finished_ms: int | None
    cancel_requested: bool
    nodes: list[WorkflowNode] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for node in self.nodes:
            out[node.status] = out.get(node.status, 0) + 1
        return out


class WorkflowHandle:
    """A submitted workflow. With an :class:`~taskq.AsyncTaskQueue` the methods return
    awaitables."""

    __slots__ = ("_tq", "id", "nodes", "sinks")

    def __init__(self, workflow_id: str, tq: Any, nodes: list[str], sinks: list[str]) -> None:
        self.id = workflow_id
        self._tq = tq
        #: The task ids of the nodes, in the order they were compiled (parents first).
        self.nodes = nodes
        #: The nodes nothing depends on: the last step of a chain, a group's callback.
        self.sinks = sinks

    def info(self) -> Any:
        return self._tq.workflow(self.id)

    def cancel(self) -> Any:
        return self._tq.cancel_workflow(self.id)

    def result(self, timeout_s: float | None = None) -> Any:
        """The result of the one sink node (a chain's last step, a group's callback); with
        several sinks (a group without a callback), use ``tq.handle(id).result()`` on each."""
        if len(self.sinks) != 1:
            raise InvalidOption(f"workflow {self.id} has {len(self.sinks)} final nodes; ask each one")
        return self._tq.handle(self.sinks[0]).result(timeout_s)

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.id!r}, nodes={len(self.nodes)})"


# -- plans and flows ------------------------------------------------------------------------


def new_workflow_id() -> str:
    return "wf" + secrets.token_hex(8)


def _queue_key_json(ops: Operations, queue: str) -> dict[str, Any]:
    k = ops.queue_keys(queue)
    return {
        "t": k.task_prefix,
        "i": k.idem_prefix,
        "queued": k.queued,
        "scheduled": k.scheduled,
        "config": k.config,
        "tel": k.telemetry,
        "wake": k.wake,
    }


def _node_args(spec: TaskSpec, feed: str, policy: str, parents: Sequence[str]) -> list[Any]:
    b = spec.backoff
    default = b == DEFAULT_BACKOFF
    return [
        spec.id,
        spec.queue,
        feed,
        policy,
        " ".join(parents),
        spec.name,
        spec.args_json,
        "" if spec.kwargs_json == "{}" else spec.kwargs_json,
        "" if spec.priority is None else spec.priority,
        spec.max_retries,
        spec.timeout_ms or "",
        spec.result_ttl_s,
        *(
            ("", "", "", "")
            if default
            else (int(b.base_s * 1000), int(b.cap_s * 1000), int(b.min_s * 1000), repr(b.jitter))
        ),
        spec.meta_json,
    ]


def submit_flow(
    ops: Operations,
    specs: Sequence[TaskSpec],
    nodes: Sequence[tuple[Feed, OnError, Sequence[str]]],
    outside: Sequence[str] = (),
    known_queues: set[str] | None = None,
) -> Flow[str]:
    """Submit nodes (``specs[i]`` with ``nodes[i]`` = feed, policy, parent task ids, parents
    first) in one script call; parents outside ``specs`` are existing tasks (``depends_on``).
    Returns the workflow id: that of the outside parents when they have one, else a new one."""
    for spec in specs:
        if spec.delay_ms or spec.idempotency_key:
            raise InvalidOption(
                "a workflow node takes no delay_s, eta or idempotency_key: it starts when its parents end"
            )
    outside = list(dict.fromkeys(outside))
    queues = {s.queue for s in specs} | {queue_of_task_id(p) for p in outside}
    new_queues = queues - (known_queues if known_queues is not None else set())
    if new_queues:
        yield ops.register_queues(sorted(new_queues))
        if known_queues is not None:
            known_queues.update(new_queues)
    workflow_id = new_workflow_id()
    for _ in range(3):
        if outside:
            owners: list[str | None] = yield Plan(
                [Command(("HGET", ops.queue_keys(queue_of_task_id(p)).task(p), "wf")) for p in outside], list
            )
            bases = sorted({b for b in owners if b})
            live: list[int] = []
            if bases:
                live = yield Plan([Command(("EXISTS", b + "meta")) for b in bases], list)
            alive = [b for b, n in zip(bases, live, strict=True) if n]
            if len(alive) > 1:
                raise InvalidOption(
                    f"the parents belong to different workflows: {', '.join(map(workflow_id_of, alive))}"
                )
            if alive:
                workflow_id = workflow_id_of(alive[0])
        wk = ops.keys.workflow(workflow_id)
        argv: list[Any] = [
            wk.base,
            workflow_id,
            ops.tel,
            max([s.result_ttl_s for s in specs] or [0]),
            json.dumps({q: _queue_key_json(ops, q) for q in sorted(queues)}),
            " ".join(outside),
        ]
        for spec, (feed, policy, parents) in zip(specs, nodes, strict=True):
            argv += _node_args(spec, feed, policy, parents)
        replies = yield Plan([script_call("wf_submit", wk.all, argv)], list, errors_inline=True)
        err = reply_error(replies[0])
        if err is not None:
            if "belongs to another workflow" in str(err):
                continue  # a parent was adopted meanwhile: read its workflow again
            raise err
        return workflow_id
    raise InvalidOption("the parents' workflow kept changing while submitting; try again")


def submit_workflow_flow(
    ops: Operations, specs: Sequence[TaskSpec], compiled: Sequence[Node], known: set[str]
) -> Flow[tuple[str, list[str]]]:
    """Submit a compiled workflow; returns (workflow id, sink task ids)."""
    ids = [s.id for s in specs]
    nodes = [(n.feed, n.policy, [ids[p] for p in n.parents]) for n in compiled]
    workflow_id = yield from submit_flow(ops, specs, nodes, (), known)
    has_child = {p for n in compiled for p in n.parents}
    return workflow_id, [ids[i] for i in range(len(ids)) if i not in has_child]


def workflow_flow(ops: Operations, workflow_id: str) -> Flow[WorkflowInfo]:
    """Read a workflow and every node's task record (two round trips)."""
    wk = ops.keys.workflow(workflow_id)
    base = wk.base
    meta, nodes, parents, settled = yield Plan(
        [Command(("HGETALL", base + s)) for s in ("meta", "nodes", "parents", "settled")],
        lambda rs: [_pairs(r) for r in rs],
    )
    if not meta:
        raise WorkflowNotFound(f"no workflow {workflow_id}: it never existed, or its retention passed")
    ids = list(nodes)
    tasks: list[Task | None] = (yield ops.get_many(ids)) if ids else []
    out = []
    for node_id, task in zip(ids, tasks, strict=True):
        _, feed, policy = [*nodes[node_id].split(" "), "", "", ""][:3]
        out.append(WorkflowNode(node_id, parents.get(node_id, "").split(), feed, policy, settled.get(node_id), task))
    return WorkflowInfo(
        id=workflow_id,
        state=meta.get("state", "running"),
        total=int(meta.get("total", 0)),
        created_ms=int(meta.get("created_ms", 0)),
        finished_ms=int(meta["finished_ms"]) if meta.get("finished_ms") else None,
        cancel_requested=meta.get("cancel") == "1",
        nodes=out,
    )


def cancel_workflow_plan(ops: Operations, workflow_id: str) -> Plan[dict[str, int]]:
    """Cancel what has not run; flag what runs. Returns {"cancelled": n, "cancelling": m}."""
    wk: WorkflowKeys = ops.keys.workflow(workflow_id)
    command = script_call("wf_cancel", wk.all, [wk.base, ops.tel])

    def parse(replies: list[Any]) -> dict[str, int]:
        err = reply_error(replies[0])
        if isinstance(err, TaskNotFound):
            raise WorkflowNotFound(f"no workflow {workflow_id}: it never existed, or its retention passed")
        if err is not None:
            raise err
        return {"cancelled": int(replies[0][0]), "cancelling": int(replies[0][1])}

    return Plan([command], parse, errors_inline=True)


def _pairs(flat: Any) -> dict[str, str]:
    if isinstance(flat, Mapping):
        return {str(k): str(v) for k, v in flat.items()}
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}
