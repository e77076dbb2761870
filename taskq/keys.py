"""The only place that builds Redis key names.

Every key of a queue carries the hash tag ``{queue}``, so all of a queue lives on
one Redis Cluster slot and every Lua script touches one slot only. The few global
keys (the queue registry, the worker registry) are written with single commands; the
one script that writes a global key, ``heartbeat.lua``, touches that one key only (a
worker's own hash), so it too stays on one slot.

Layout for queue ``emails`` and the default prefix ``taskq``::

    taskq:{emails}:queued       ZSET  task id -> priority/FIFO score (claim pops the lowest)
    taskq:{emails}:scheduled    ZSET  task id -> due time, ms (delayed tasks and retries)
    taskq:{emails}:running      ZSET  task id -> lease deadline, ms
    taskq:{emails}:dead         ZSET  task id -> time it died, ms (the dead-letter queue)
    taskq:{emails}:t:<id>       HASH  the task record
    taskq:{emails}:idem:<key>   STR   idempotency key -> task id
    taskq:{emails}:meta         HASH  FIFO clock and lease-token counter
    taskq:{emails}:config       HASH  queue settings (aging window)
    taskq:{emails}:stats        HASH  counters per outcome
    taskq:{emails}:hist:wait    STRING  latency histogram, lifetime: bucket b is the unsigned 48-bit
    taskq:{emails}:hist:run             counter at bit offset 48*b (BITFIELD INCRBY u48 #b);
    taskq:{emails}:hist:e2e             one key per metric (queue wait, run time, end to end)
    taskq:{emails}:events       STREAM  capped log of task transitions (an entry holds a batch)
    taskq:{emails}:ckpt:1s      ZSET  window checkpoints, one per second with a write (75 s)
    taskq:{emails}:ckpt:10s     ZSET  window checkpoints, the first per 10 s (16 min)
    taskq:{emails}:depth        HASH  priority -> tasks queued at that priority
    taskq:{emails}:windows      HASH  window figures, computed once a second by snapshot.lua
    taskq:{emails}:wake         pub/sub channel: "work arrived in an empty queue"
    taskq:{emails}:limits       HASH  rate limits: task name ('' the whole queue) -> spec
    taskq:{emails}:rl:<limiter> STR   one rate limiter's state (expires once at rest)
    taskq:{emails}:schedules    HASH  schedule name -> "<last fire ms> <task id> <enqueued ms>"
    taskq:{wf:<id>}:meta        HASH  a workflow (chain, group, DAG): state and counters; with
    taskq:{wf:<id>}:nodes ...         nodes, parents, children, queues, pending, settled and
                                      results (lua/lib/workflow.lua), one slot per workflow
    taskq:queues                SET   names of known queues
    taskq:workers               ZSET  worker id -> last heartbeat, ms
    taskq:worker:<id>           HASH  one worker's registration (expires without heartbeat)
    taskq:schedules             HASH  schedule name -> its definition (JSON, taskq.schedules)

A sharded queue (``configure_queue("hot", shards=3)``, :mod:`taskq.shards`) keeps its tasks in
sub-queues named ``hot~0``, ``hot~1.4``, ``hot~2.1``: the logical name, the reserved separator
``~`` (no user queue name may contain it), the shard index and, where needed, a salt chosen so
that sub-queue i of K hashes into the i-th K-th of the cluster's slot space (so K sub-queues
land on K different masters of an evenly split cluster). Each sub-queue is an ordinary queue
with every key above under its own hash tag, e.g. ``taskq:{hot~1.4}:queued``; the shard count
lives in the logical queue's ``config`` hash (field ``shards``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from taskq.errors import InvalidQueueName, TaskNotFound, WorkflowNotFound

DEFAULT_PREFIX = "taskq"
# \Z, not $: "$" also matches before a trailing newline, which would let "q\n" through.
QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z")
TASK_ID_SEPARATOR = ":"
#: Between a sharded queue's name and its shard: reserved, no user queue name contains it.
SHARD_SEPARATOR = "~"
#: A queue name as stored: a user's queue name, or a sub-queue of a sharded one ("hot~1.4").
PHYSICAL_QUEUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}(?:~[0-9]{1,3}(?:\.[0-9]{1,6})?)?\Z")
#: Workflow ids are made by taskq.workflows.new_workflow_id ("wf" and 16 hex digits); any id
#: safe inside a key's hash tag is accepted.
WORKFLOW_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")


def check_queue_name(name: object) -> str:
    """Return ``name`` if it is a valid queue name, else raise :class:`InvalidQueueName`."""
    if not isinstance(name, str) or not QUEUE_NAME_RE.match(name):
        raise InvalidQueueName(
            f"invalid queue name {name!r}: use 1-64 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or digit (no braces, colons or whitespace)"
        )
    return name


def check_physical_queue_name(name: object) -> str:
    """Return ``name`` if it is a queue name or a sharded queue's sub-queue name, else raise
    :class:`InvalidQueueName`."""
    if isinstance(name, str) and PHYSICAL_QUEUE_RE.match(name):
        return name
    return check_queue_name(name)  # raises, with the user-facing message


@functools.lru_cache(maxsize=4096)
def shard_queue(queue: str, index: int, shards: int) -> str:
    """The name of sub-queue ``index`` (0-based) of ``queue`` split into ``shards``: ``queue~index``
    and, when that does not hash into the index-th ``shards``-th of the slot space, the first salt
    ``.n`` that does (about ``shards`` CRC16s; deterministic, so every client agrees)."""
    base = f"{check_queue_name(queue)}{SHARD_SEPARATOR}{index}"
    salt = 0
    while True:
        name = base if salt == 0 else f"{base}.{salt}"
        if key_slot(name.encode()) * shards // REDIS_CLUSTER_HASH_SLOTS == index:
            return name
        salt += 1


def logical_queue(name: str) -> str:
    """The queue a (sub-)queue name belongs to: ``hot~1.4`` -> ``hot``; other names unchanged."""
    return name.partition(SHARD_SEPARATOR)[0]


def queue_of_task_id(task_id: str) -> str:
    """The queue a task id belongs to (ids look like ``emails:0193a1b2c3d4e5f6a7b8``, or
    ``hot~1.4:0193...`` for a task of a sharded queue: then the sub-queue's name)."""
    queue, sep, rest = task_id.partition(TASK_ID_SEPARATOR) if isinstance(task_id, str) else ("", "", "")
    if not sep or not rest or not PHYSICAL_QUEUE_RE.match(queue) or not is_utf8(rest):
        raise TaskNotFound(f"{task_id!r} is not a taskq task id (expected 'queue:hex')")
    return queue


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be sent to Redis (a lone surrogate such as '\\ud800' cannot)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """All key names of one queue."""

    prefix: str
    queue: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.queue}}}:"

    @property
    def queued(self) -> str:
        return self.base + "queued"

    @property
    def scheduled(self) -> str:
        return self.base + "scheduled"

    @property
    def running(self) -> str:
        return self.base + "running"

    @property
    def dead(self) -> str:
        return self.base + "dead"

    @property
    def task_prefix(self) -> str:
        """Prefix of task record keys; scripts append the task id to it."""
        return self.base + "t:"

    def task(self, task_id: str) -> str:
        return self.task_prefix + task_id

    @property
    def idem_prefix(self) -> str:
        """Prefix of idempotency keys; scripts append the key to it."""
        return self.base + "idem:"

    def idem(self, key: str) -> str:
        return self.idem_prefix + key

    @property
    def meta(self) -> str:
        return self.base + "meta"

    @property
    def config(self) -> str:
        return self.base + "config"

    @property
    def stats(self) -> str:
        return self.base + "stats"

    @property
    def histograms(self) -> list[str]:
        """The latency histograms: queue wait, run time, end to end (the scripts' order)."""
        return [self.base + "hist:wait", self.base + "hist:run", self.base + "hist:e2e"]

    @property
    def events(self) -> str:
        return self.base + "events"

    @property
    def ckpt_fine(self) -> str:
        """Window checkpoints of the last 75 s, one per second in which the queue changed."""
        return self.base + "ckpt:1s"

    @property
    def ckpt_coarse(self) -> str:
        """Window checkpoints of the last 16 minutes, the first of every 10-second period."""
        return self.base + "ckpt:10s"

    @property
    def depth(self) -> str:
        """Queued tasks per priority, kept by every script that moves tasks in or out of queued."""
        return self.base + "depth"

    @property
    def windows(self) -> str:
        """Window figures (per window length) cached for the current second by snapshots."""
        return self.base + "windows"

    @property
    def telemetry(self) -> list[str]:
        """The telemetry keys, in the order every script takes them (lua/lib/common.lua, tel_open)."""
        return [self.meta, self.stats, self.events, self.ckpt_fine, self.ckpt_coarse, self.depth, *self.histograms]

    @property
    def wake(self) -> str:
        return self.base + "wake"

    @property
    def idle(self) -> str:
        """Workers waiting for this queue's next task (taskq.handoff): a ZSET of
        ``"<lease ms> <worker id>"`` scored by when the registration lapses (server ms)."""
        return self.base + "idle"

    @property
    def limits(self) -> str:
        """Rate limits (taskq.ratelimit): task name, or '' for the whole queue -> spec."""
        return self.base + "limits"

    @property
    def rate_prefix(self) -> str:
        """Prefix of the rate limiters' state keys; the claim script appends the limiter."""
        return self.base + "rl:"

    @property
    def schedules(self) -> str:
        """The schedules of this queue: name -> last fire time, its task, when enqueued."""
        return self.base + "schedules"

    def all_fixed(self) -> list[str]:
        """The queue's keys that are not per task (for tests and purging a queue)."""
        return [
            self.queued,
            self.scheduled,
            self.running,
            self.dead,
            self.meta,
            self.config,
            self.stats,
            *self.histograms,
            self.events,
            self.ckpt_fine,
            self.ckpt_coarse,
            self.depth,
            self.windows,
            self.limits,
            self.idle,
            self.schedules,
        ]


#: The keys of one workflow, after its prefix, in the order the wf_*.lua scripts take them.
WORKFLOW_KEY_SUFFIXES = ("meta", "nodes", "parents", "children", "queues", "pending", "settled", "results")


@dataclass(frozen=True, slots=True)
class WorkflowKeys:
    """All key names of one workflow: the hash tag ``{wf:<id>}`` puts them on one slot."""

    prefix: str
    workflow_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{wf:{self.workflow_id}}}:"

    @property
    def all(self) -> list[str]:
        return [self.base + suffix for suffix in WORKFLOW_KEY_SUFFIXES]

    @property
    def meta(self) -> str:
        return self.base + "meta"


def workflow_id_of(base: str) -> str:
    """The workflow id in a workflow key prefix (a task record's ``wf`` field)."""
    start = base.find("{wf:")
    end = base.find("}", start)
    return base[start + 4 : end] if start >= 0 and end > start else base


@dataclass(frozen=True, slots=True)
class GlobalKeys:
    """Keys that belong to no single queue."""

    prefix: str = DEFAULT_PREFIX

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def tasks(self) -> str:
        """The task registry workers publish: task name -> JSON (taskq.registry)."""
        return f"{self.prefix}:tasks"

    @property
    def schedules(self) -> str:
        """Every schedule's definition: name -> JSON (taskq.schedules)."""
        return f"{self.prefix}:schedules"

    def queue(self, name: str) -> QueueKeys:
        """The keys of a queue, or of a sharded queue's sub-queue (``hot~1.4``)."""
        return QueueKeys(self.prefix, check_physical_queue_name(name))

    def workflow(self, workflow_id: str) -> WorkflowKeys:
        if not isinstance(workflow_id, str) or not WORKFLOW_ID_RE.match(workflow_id):
            raise WorkflowNotFound(f"{workflow_id!r} is not a taskq workflow id (expected 'wf' and hex)")
        return WorkflowKeys(self.prefix, workflow_id)

    def queue_scan_pattern(self, name: str) -> str:
        """A SCAN MATCH pattern for every key of one queue (braces escaped)."""
        return f"{self.prefix}:\\{{{name}\\}}:*"
