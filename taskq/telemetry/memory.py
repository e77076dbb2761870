"""Retained memory in the snapshot: the server's ``used_memory`` and, per queue, about how many
finished task records it keeps (docs/RELIABILITY.md, "Memory per finished task").

:func:`with_memory` wraps :meth:`taskq.ops.Operations.snapshot`'s flow: it adds ``INFO memory``
to the flow's first round trip (so a snapshot takes no extra one) and fills in
:attr:`Snapshot.used_memory_bytes` and each :attr:`QueueSnapshot.retained_finished`.
INFO's reply is read inline: where the server has no INFO (fakeredis) or the user may not
run it (the least-privilege ACL users), the figure is None and the snapshot is unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from taskq.ops_base import reply_error
from taskq.plan import Command, Flow, Plan
from taskq.telemetry.snapshot import QueueSnapshot, Snapshot

FINISHED_OK = ("succeeded", "cancelled")
"""The outcomes whose records live for the result TTL (dead ones live for the dead TTL)."""


def used_memory_of(reply: object) -> int | None:
    """``used_memory`` from an INFO memory reply: a dict, a dict of them per cluster node
    (summed), or None for an error or anything else."""
    if not isinstance(reply, Mapping):
        return None
    if "used_memory" in reply:
        return int(reply["used_memory"])
    per_node = [used_memory_of(r) for r in reply.values()]
    known = [n for n in per_node if n is not None]
    return sum(known) if known and len(known) == len(per_node) else None


def retained_finished(q: QueueSnapshot, result_ttl_s: int) -> int:
    """About how many finished records queue ``q`` keeps: its dead ones (the dead index, exact)
    plus its succeeded and cancelled ones finished within ``result_ttl_s``, estimated as their
    rate over the snapshot's longest window times the TTL, and at most all that ever finished
    (without a window: all that ever finished, an upper bound). Exact for a steady rate; it
    lags a rate that changed within the TTL, and counts no record deleted before its TTL."""
    ever = sum(q.counters.get(name, 0) for name in FINISHED_OK)
    if result_ttl_s <= 0:
        return q.dead
    if not q.windows:
        return q.dead + ever
    window = max(q.windows, key=lambda w: w.length_s)
    if window.span_s <= 0:
        return q.dead + ever
    recent = sum(window.total(name) for name in FINISHED_OK)
    return q.dead + min(ever, round(recent / window.span_s * result_ttl_s))


def _first_with_info(plan: Plan[Any]) -> Plan[tuple[Any, int | None]]:
    def parse(replies: list[Any]) -> tuple[Any, int | None]:
        own = replies[:-1]
        if not plan.errors_inline:
            for reply in own:
                err = reply_error(reply)
                if err is not None:
                    raise err
        return plan.parse(own), used_memory_of(replies[-1])

    return Plan([*plan.commands, Command(("INFO", "memory"))], parse, errors_inline=True)


def with_memory(flow: Flow[Snapshot], result_ttl_s: int) -> Flow[Snapshot]:
    """``flow`` (a snapshot's) with the retained-memory figures filled in; see the module."""
    used: int | None = None
    reply: Any = None
    first = True
    try:
        while True:
            step = flow.send(reply)
            if first and isinstance(step, Plan):
                first = False
                reply, used = yield _first_with_info(step)
            else:
                reply = yield step
    except StopIteration as stop:
        snapshot: Snapshot = stop.value
    queues = tuple(
        dataclasses.replace(q, retained_finished=retained_finished(q, result_ttl_s)) for q in snapshot.queues
    )
    return dataclasses.replace(snapshot, queues=queues, used_memory_bytes=used)
