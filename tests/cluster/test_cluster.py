"""taskq on a real 3-master Redis Cluster (the session fixture ``redis_cluster``): every command
stays on one slot, a worker serving queues on every master drains them all, wake-ups use
sharded pub/sub, the CLI and snapshots read every queue, and workflows are refused.
(The conformance suite also runs here: tests/core/test_conformance.py, ``any_url``.)"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio.cluster as aiocluster
import redis.cluster
from clusterhelpers import LocalCluster
from helpers import wait_until
from redis.crc import key_slot
from typer.testing import CliRunner

import taskq
from taskq import handoff
from taskq.cli import app
from taskq.cluster import is_cluster_url, parse_cluster_url
from taskq.connection import is_cluster
from taskq.scripts import library

RECORDED = (
    (redis.cluster.RedisCluster, "execute_command"),
    (redis.cluster.ClusterPipeline, "execute_command"),
    (aiocluster.RedisCluster, "execute_command"),
    (aiocluster.ClusterPipeline, "execute_command"),
)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every command a cluster client (blocking or asyncio, single or pipelined) sends, as args."""
    log: list[tuple[Any, ...]] = []
    lock = threading.Lock()
    for cls, name in RECORDED:
        original = getattr(cls, name)

        def recorded(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                log.append(args)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, recorded)
    return log


@pytest.fixture
def rc(redis_cluster: LocalCluster) -> Iterator[redis.cluster.RedisCluster]:
    client = redis_cluster.client()
    yield client
    client.close()


def spread_queues(rc: redis.cluster.RedisCluster, per_master: int = 2) -> list[str]:
    """Queue names whose slots are spread over the masters, ``per_master`` on each."""
    by_node: dict[str, list[str]] = {}
    n = 0
    while len(by_node) < 3 or any(len(v) < per_master for v in by_node.values()):
        name = f"q{n}"
        node = rc.get_node_from_key(f"taskq:{{{name}}}:queued")
        if len(by_node.setdefault(node.name, [])) < per_master:
            by_node[node.name].append(name)
        n += 1
    return [q for names in by_node.values() for q in names]


def command_slots(rc: redis.cluster.RedisCluster, args: tuple[Any, ...]) -> set[int]:
    """The slots a command touches: its keys (as the server's command table names them) and,
    for a script, the key prefixes and wake channel it is given in ARGV (they carry a hash tag)."""
    name = str(args[0]).upper()
    if name in ("EVALSHA", "EVAL", "FCALL"):
        numkeys = int(args[2])
        keys = [str(k) for k in args[3 : 3 + numkeys]]
        tagged = [str(a).removeprefix("SPUBLISH ") for a in args[3 + numkeys :] if "{" in str(a)]
        return {key_slot(k.encode()) for k in keys + tagged}
    keys = rc.commands_parser.get_keys(rc.get_default_node().redis_connection, *args) or []
    return {key_slot(k.encode() if isinstance(k, str) else k) for k in keys}


def test_cluster_url_parsing_and_redaction() -> None:
    address = parse_cluster_url("rediss+cluster://me:p%40ss@h1:7000,[::1]:7001,h3/0")
    assert address.nodes == (("h1", 7000), ("::1", 7001), ("h3", 6379))
    assert (address.username, address.password, address.tls) == ("me", "p@ss", True)
    assert is_cluster_url("redis+cluster://h:1") and not is_cluster_url("redis://h:1")
    for bad, fault in [
        ("redis+cluster://u:secret@h:99999", "port"),
        ("redis+cluster://u:secret@", "no host"),
        ("redis+cluster://u:secret@h:1/3", "database 0"),
        ("redis+cluster://u:secret@h:1?ssl=1", "query"),
        ("redis+cluster://u:secret@h:1,,h:2", "no host"),
    ]:
        with pytest.raises(taskq.InvalidOption, match=fault) as info:
            taskq.TaskQueue(bad)
        assert "secret" not in str(info.value) and "u:***@" in str(info.value)
    taskq_script = str(Path(sys.executable).parent / "taskq")
    done = subprocess.run(
        [taskq_script, "--url", "redis+cluster://u:secret@h:1,h:x", "stats"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "secret" not in done.stderr + done.stdout
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and "bad Redis Cluster URL 'redis+cluster://u:***@h:1,h:x'" in line


def test_clients_are_cluster_clients(tq: taskq.TaskQueue, cluster_url: str) -> None:
    assert is_cluster(tq.redis) and tq.ops.cluster
    assert tq.get(tq.enqueue("t", force=True).id).status is taskq.TaskStatus.QUEUED


def test_no_command_spans_slots(
    tq: taskq.TaskQueue, rc: redis.cluster.RedisCluster, sent: list[tuple[Any, ...]], workers: list[Any]
) -> None:
    """A workload over 6 queues on the 3 masters (enqueue single and bulk, delays, retries,
    dead letters and re-drive, cancel, lookups by id, stats, snapshot, events, a worker serving
    all 6): every command and script call the clients send touches one slot."""
    queues = spread_queues(rc)
    done: list[str] = []

    @tq.task(name="job", max_retries=1)
    def job(n: int, fail: bool = False) -> int:
        if fail:
            raise ValueError(n)
        done.append(str(n))
        return n

    handles = [job.enqueue(i, queue=q) for i, q in enumerate(queues)]
    handles += tq.enqueue_many([{"name": "job", "args": [10 + i], "queue": q} for i, q in enumerate(queues)])
    handles += [job.enqueue(20 + i, queue=q, delay_s=0.05) for i, q in enumerate(queues)]
    doomed = [job.enqueue(30 + i, True, queue=q) for i, q in enumerate(queues)]
    cancelled = tq.enqueue("job", args=[99], queue=queues[0], delay_s=600)
    assert tq.cancel(cancelled.id) == "cancelled"
    workers.append(tq.start_worker(queues=queues, concurrency=4))
    assert [h.result(timeout_s=30) for h in handles] == [h.info().result for h in handles]
    wait_until(lambda: sum(s.dead for s in tq.all_stats()) == len(doomed), what="the doomed tasks dead")
    found = tq._exec.run(tq.ops.get_many([h.id for h in doomed]))  # one pipeline over the 6 queues
    assert {t.status for t in found if t is not None} == {taskq.TaskStatus.DEAD} and None not in found
    for q in queues:
        assert tq.dead_letters(q).requeue(all=True) == 1
    snapshot = tq.snapshot()
    assert {s.queue for s in snapshot.queues} == set(queues)
    assert [w.id for w in snapshot.workers] == [w.id for w in tq.workers()]
    events = list(tq.events(queues, since="0", follow=False))
    assert {e.queue for e in events} == set(queues)
    wait_until(lambda: sum(s.dead for s in tq.all_stats()) == len(doomed), what="the re-driven tasks dead again")

    sent_scripts = {str(args[1]) for args in sent if args[0] in ("EVALSHA", "FCALL")}
    used = ("enqueue", "claim", "complete", "fail", "cancel", "redrive", "promote_due", "snapshot", "heartbeat")
    assert {library().functions[name] for name in used} <= sent_scripts  # the worker's calls were seen too
    assert len(command_slots(rc, ("EVALSHA", "x", 1, "taskq:{a}:queued", "taskq:{b}:"))) == 2  # it can see one
    assert len(command_slots(rc, ("MGET", "taskq:{a}:meta", "taskq:{b}:meta"))) == 2
    spanning = [args for args in sent if len(command_slots(rc, args)) > 1]
    assert spanning == []
    touched = {slot for args in sent for slot in command_slots(rc, args)}
    assert {key_slot(f"taskq:{{{q}}}:queued".encode()) for q in queues} <= touched


def test_worker_drains_queues_on_every_master_woken_by_sharded_pubsub(
    tq: taskq.TaskQueue, rc: redis.cluster.RedisCluster, workers: list[Any]
) -> None:
    """The worker subscribes with SSUBSCRIBE on each queue's shard (no plain SUBSCRIBE), and
    with an idle poll of 10 minutes only a wake-up can make it claim what arrives later."""
    queues = spread_queues(rc)
    ran: list[int] = []

    @tq.task
    def job(n: int) -> None:
        ran.append(n)

    workers.append(tq.start_worker(queues=queues, concurrency=2, idle_poll_s=600))
    channels = [tq.ops.queue_keys(q).wake for q in queues]
    wait_until(lambda: all(n == 1 for _, n in shard_subscribers(rc, channels)), what="SSUBSCRIBE on every queue")
    assert [n for _, n in rc.pubsub_numsub(*channels)] == [0] * len(channels)  # no plain SUBSCRIBE
    wait_until(lambda: workers[0].worker._claim_waiting, what="the worker idle")  # type: ignore[attr-defined]
    for i, q in enumerate(queues):
        job.enqueue(i, queue=q)
    wait_until(lambda: len(ran) == len(queues), timeout_s=30, what="every queue drained")
    assert sorted(ran) == list(range(len(queues)))
    assert {s.queue: s.queued for s in tq.all_stats()} == dict.fromkeys(queues, 0)


def shard_subscribers(rc: redis.cluster.RedisCluster, channels: list[str]) -> list[tuple[str, int]]:
    """SSUBSCRIBE counts, asked of the master that owns each channel's slot."""
    out = []
    for channel in channels:
        node = rc.get_node_from_key(channel)
        out.append((channel, int(dict(node.redis_connection.pubsub_shardnumsub(channel))[channel])))
    return out


def test_enqueue_wakes_with_spublish(tq: taskq.TaskQueue, rc: redis.cluster.RedisCluster) -> None:
    channel = tq.ops.queue_keys("emails").wake
    pubsub = rc.pubsub()
    pubsub.ssubscribe(channel)
    try:
        wait_until(lambda: pubsub.get_sharded_message(timeout=0.1) is not None, what="the subscription confirmed")
        tq.enqueue("t", force=True, queue="emails")
        messages: list[Any] = []
        wait_until(
            lambda: bool(messages.append(pubsub.get_sharded_message(timeout=0.1)) or any(messages)),
            what="a wake-up",
        )
        assert [m["channel"] for m in messages if m] == [channel]
    finally:
        pubsub.close()


def test_cli_stats_and_snapshot_of_many_queues(tq: taskq.TaskQueue, rc: redis.cluster.RedisCluster) -> None:
    queues = spread_queues(rc)
    for n, q in enumerate(queues):
        tq.enqueue_many([{"name": "t", "force": True, "queue": q}] * (n + 1))
    result = CliRunner().invoke(app, ["--url", tq.url, "stats"])
    assert result.exit_code == 0, result.output
    for q in queues:
        assert q in result.output
    snapshot = tq.snapshot(running_limit=0)
    assert {s.queue: s.queued for s in snapshot.queues} == {q: n + 1 for n, q in enumerate(queues)}
    assert sorted(tq.queues()) == sorted(queues)


def test_async_client_on_cluster(cluster_url: str, rc: redis.cluster.RedisCluster) -> None:
    queues = spread_queues(rc, per_master=1)

    async def main() -> dict[str, int]:
        async with taskq.AsyncTaskQueue(cluster_url) as aq:
            ids = await asyncio.gather(*(aq.enqueue("t", force=True, queue=q) for q in queues for _ in range(3)))
            assert {(await aq.get(h.id)).queue for h in ids} == set(queues)
            return {s.queue: s.queued for s in (await aq.snapshot()).queues}

    assert asyncio.run(main()) == dict.fromkeys(queues, 3)


def test_workflows_are_refused_on_a_cluster(tq: taskq.TaskQueue) -> None:
    parent = tq.enqueue("t", force=True)
    with pytest.raises(taskq.NotSupportedOnCluster, match="nothing was written"):
        tq.submit(taskq.chain(taskq.signature("t"), taskq.signature("t")))
    with pytest.raises(taskq.NotSupportedOnCluster):
        tq.enqueue("t", force=True, depends_on=[parent])
    assert tq.stats().queued == 1  # only the parent


def test_idle_workers_are_handed_tasks_on_every_master(
    tq: taskq.TaskQueue, rc: redis.cluster.RedisCluster, workers: list[Any]
) -> None:
    """The hand-off on a cluster: the worker's own channels are sharded (SSUBSCRIBE, each on
    its queue's shard), and the enqueue script on each master leases the task to it and
    SPUBLISHes it there: every task's record was started by the script that queued it."""
    queues = spread_queues(rc)

    @tq.task
    def job(n: int) -> int:
        return n

    w = tq.start_worker(queues=queues, concurrency=len(queues), idle_poll_s=600)
    workers.append(w)
    own = [handoff.channel(tq.ops, q, w.worker.id) for q in queues]
    wait_until(lambda: all(n == 1 for _, n in shard_subscribers(rc, own)), what="SSUBSCRIBE on every own channel")
    wait_until(lambda: all(rc.zcard(tq.ops.queue_keys(q).idle) == 1 for q in queues), what="registered on every queue")
    handles = [job.enqueue(i, queue=q) for i, q in enumerate(queues)]
    assert [h.result(timeout_s=30) for h in handles] == list(range(len(queues)))
    for h, q in zip(handles, queues, strict=True):
        rec = rc.hgetall(tq.ops.queue_keys(q).task(h.id))
        assert rec["started_ms"] == rec["enqueued_ms"] and rec["worker"] == w.worker.id
