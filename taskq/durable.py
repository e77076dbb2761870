"""``durable=True``: an enqueue is acknowledged only once a replica has it.

Redis replicates asynchronously: a primary that acknowledged an enqueue and then died before
its replica got it loses the task when the replica is promoted (Sentinel, a Cluster
failover). With ``TaskQueue(url, durable=True)`` the enqueue's script calls are followed, in
the same pipeline and so on the same connection, by ``WAIT 1 <timeout>``: the call returns once
one replica has acknowledged every write of that connection so far, and raises
:class:`~taskq.errors.NotReplicated` when none did within :data:`WAIT_TIMEOUT_MS` (the tasks are
written on the primary; enqueueing again with the same idempotency key is safe).

Not on a Redis Cluster yet: ``WAIT`` has no key, so a cluster client cannot route it to the
queue's master with the enqueue (``NotSupportedOnCluster``). ``WAITAOF`` (Redis 7.2+, fsync on
the replica too) is not used: the servers this was measured on (7.0) do not have it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from taskq.errors import NotReplicated
from taskq.plan import Command, Plan

T = TypeVar("T")

#: How long an enqueue waits for a replica before raising NotReplicated.
WAIT_TIMEOUT_MS = 1000
#: How many replicas must acknowledge.
REPLICAS = 1


def replicated(plan: Plan[T], replicas: int = REPLICAS, timeout_ms: int = WAIT_TIMEOUT_MS) -> Plan[T]:
    """``plan`` followed by ``WAIT replicas timeout_ms``; its result once enough replicas
    acknowledged, else :class:`NotReplicated`."""

    def parse(replies: list[Any]) -> T:
        *own, acked = replies
        result = plan.parse(own)
        if isinstance(acked, Exception) or int(acked) < replicas:
            raise NotReplicated(
                f"the enqueue was written on the primary but {acked} of {replicas} replica(s) acknowledged it "
                f"within {timeout_ms} ms: it could be lost in a failover; enqueue it again with the same "
                "idempotency key to be sure (durable=True)"
            )
        return result

    return Plan([*plan.commands, Command(("WAIT", replicas, timeout_ms))], parse, plan.errors_inline)


__all__ = ["REPLICAS", "WAIT_TIMEOUT_MS", "replicated"]
