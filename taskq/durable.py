"""``durable=True``: an enqueue is acknowledged only once a replica has it.

Redis replicates asynchronously: a primary that acknowledged an enqueue and then died before
its replica got it loses the task when the replica is promoted (Sentinel, a Cluster
failover). With ``TaskQueue(url, durable=True)`` the enqueue's script calls are followed, in
the same pipeline and so on the same connection, by ``WAIT 1 <timeout>``: the call returns once
one replica has acknowledged every write of that connection so far, and raises
:class:`~taskq.errors.NotReplicated` when none did within :data:`WAIT_TIMEOUT_MS` (the tasks are
written on the primary; enqueueing again with the same idempotency key is safe).

On a Redis Cluster ``WAIT`` has no key, so the cluster client cannot route it; and it must run
on the connection that made the writes. So every command of a durable plan names the key whose
master it goes to (:attr:`~taskq.plan.Command.node_key`), and there is one ``WAIT`` per queue
slot, after that slot's script calls: the executor sends each master's commands in one pipeline
on one connection to it (a slot that moved meanwhile is ``ServerUnavailable``; send again with the
same idempotency key). A single server ignores ``node_key``: the ``WAIT`` s follow every script
call, and the first one waits for them all. ``WAITAOF`` (Redis 7.2+, fsync on the replica too) is
not used: the servers this was measured on (7.0) do not have it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from redis.crc import key_slot

from taskq.errors import NotReplicated
from taskq.plan import Command, Plan

T = TypeVar("T")

#: How long an enqueue waits for a replica before raising NotReplicated.
WAIT_TIMEOUT_MS = 1000
#: How many replicas must acknowledge.
REPLICAS = 1


def replicated(plan: Plan[T], replicas: int = REPLICAS, timeout_ms: int = WAIT_TIMEOUT_MS) -> Plan[T]:
    """``plan`` (script calls with their keys first: an enqueue) followed by one ``WAIT replicas
    timeout_ms`` per slot it writes; its result once enough replicas acknowledged every write,
    else :class:`NotReplicated`."""
    commands = [Command(c.args, c.script, node_key=_first_key(c)) for c in plan.commands]
    slots = {key_slot(c.node_key.encode()): c.node_key for c in commands if c.node_key is not None}
    waits = [Command(("WAIT", replicas, timeout_ms), node_key=key) for key in slots.values()]

    def parse(replies: list[Any]) -> T:
        own, acks = replies[: len(commands)], replies[len(commands) :]
        result = plan.parse(own)
        failed = next((a for a in acks if isinstance(a, Exception)), None)
        acked = failed if failed is not None else min(int(a) for a in acks)
        if not isinstance(acked, int) or acked < replicas:
            raise NotReplicated(
                f"the enqueue was written on the primary but {acked} of {replicas} replica(s) acknowledged it "
                f"within {timeout_ms} ms: it could be lost in a failover; enqueue it again with the same "
                "idempotency key to be sure (durable=True)"
            )
        return result

    return Plan([*commands, *waits], parse, plan.errors_inline)


def _first_key(command: Command) -> str:
    """The first key of a script call (``EVALSHA sha numkeys key ...``, or ``FCALL function
    numkeys key ...``, the same past its head: :mod:`taskq.functions`): every key of one call is
    in one queue's slot."""
    if command.args[0] not in ("EVALSHA", "FCALL") or int(command.args[2]) < 1:
        raise ValueError(f"durable=True waits after script calls with keys, not {command.args[0]}")
    return str(command.args[3])


__all__ = ["REPLICAS", "WAIT_TIMEOUT_MS", "replicated"]
