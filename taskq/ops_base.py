"""What every plan builder shares: the settings (:class:`PlanSettings`), the one batch size
and chunker, the script call and reply-error helpers, and small reply decoders. No I/O."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.exceptions import ClusterDownError, NoPermissionError, OutOfMemoryError, TryAgainError

from taskq.errors import AccessDenied, ServerFull, ServerUnavailable, TaskqError
from taskq.keys import DEFAULT_PREFIX, GlobalKeys, QueueKeys
from taskq.plan import Command
from taskq.scripts import error_from_reply, load_script
from taskq.task import (
    DEFAULT_DEAD_TTL_S,
)

T = TypeVar("T")

DEFAULT_EVENTS_MAXLEN = 10_000
#: Workers whose registration expired are listed as gone for this long, then forgotten.
FORGET_WORKERS_AFTER_MS = 3_600_000


def script_call(name: str, keys: Sequence[str], argv: Sequence[Any]) -> Command:
    script = load_script(name)
    return Command(("EVALSHA", script.sha, len(keys), *keys, *argv), script)


def reply_error(reply: object) -> Exception | None:
    """The taskq exception a reply stands for (script errors mapped), or None for a value."""
    if not isinstance(reply, Exception):  # a value: never turned into text (a claim's reply is long)
        return None
    if isinstance(reply, TaskqError):
        return reply
    if isinstance(reply, NoPermissionError):  # ACL: raised by redis-py, or by redis.call in a script
        return AccessDenied(f"Redis refused it to this user: {reply}; see docs/RELIABILITY.md, 'ACL users'")
    if isinstance(reply, OutOfMemoryError):  # maxmemory with noeviction: the write was refused whole
        return ServerFull(f"Redis is full, nothing was written: {reply}")
    if isinstance(reply, (TryAgainError, ClusterDownError)) or "non local key" in str(reply):
        # a Redis Cluster moving the queue's slot (or failing over): the same call works afterwards
        return ServerUnavailable(f"Redis Cluster is moving or failing over this slot, try again: {reply}")
    return error_from_reply(str(reply)) or reply


#: Most tasks one script call enqueues, claims, completes, re-drives or purges (Lua's
#: unpack() limit is near 8000 values); the one batch size of the clients and the worker.
MAX_BATCH = 1000


def chunks(items: Sequence[T], size: int = MAX_BATCH) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size`` (the one bulk chunker)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def no_result(replies: list[Any]) -> None:
    return None


def first_reply(replies: list[Any]) -> Any:
    return replies[0]


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The settings every plan builder shares: one key prefix and one set of telemetry and
    retention settings (:class:`~taskq.ops.Operations` builds the plans).

    Telemetry: ``events_maxlen`` caps each queue's events stream at about that many events
    (0: no events); ``events_sample`` keeps the high-volume events (enqueued, started,
    succeeded, ...) of about 1 task in N; ``telemetry=False`` stops the latency histograms
    and window checkpoints (counters and queued depth are always kept).

    ``cluster``: on a Redis Cluster (a ``redis+cluster://`` URL) the scripts wake workers with
    ``SPUBLISH`` (sharded pub/sub: the message stays on the queue's shard), not ``PUBLISH``,
    and reads that span queues are sent one command per queue. ``durable``: enqueues wait for a
    replica (:mod:`taskq.durable`).
    """

    prefix: str = DEFAULT_PREFIX
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN
    dead_ttl_s: int = DEFAULT_DEAD_TTL_S
    events_sample: int = 1
    telemetry: bool = True
    cluster: bool = False
    durable: bool = False

    @property
    def keys(self) -> GlobalKeys:
        return GlobalKeys(self.prefix)

    @property
    def tel(self) -> str:
        """The telemetry settings argument every script takes (lua/lib/common.lua)."""
        return f"{max(0, self.events_maxlen)} {max(1, self.events_sample)} {int(self.telemetry)}"

    def queue_keys(self, queue: str) -> QueueKeys:
        return cached_queue_keys(self.prefix, queue)

    def wake(self, keys: QueueKeys) -> str:
        """The wake argument the scripts take (lua/lib/common.lua, ``wake_publish``)."""
        return wake_arg(keys, self.cluster)


def wake_arg(keys: QueueKeys, sharded: bool) -> str:
    """A queue's wake channel as the scripts take it: the channel, or ``SPUBLISH <channel>``."""
    return f"SPUBLISH {keys.wake}" if sharded else keys.wake


@functools.lru_cache(maxsize=4096)
def cached_queue_keys(prefix: str, queue: str) -> QueueKeys:
    return GlobalKeys(prefix).queue(queue)


def score_pairs(reply: list[Any]) -> list[tuple[str, float]]:
    """(member, score) pairs from a WITHSCORES reply, flat or already paired by redis-py."""
    if reply and isinstance(reply[0], (list, tuple)):
        return [(str(m), float(sc)) for m, sc in reply]
    return [(str(m), float(sc)) for m, sc in zip(reply[::2], reply[1::2], strict=True)]


def time_ms(reply: Any) -> int:
    """Milliseconds from a TIME reply (redis-py gives (s, us); raw it is two strings)."""
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000
