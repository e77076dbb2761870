"""Key names: every key of a queue lives in one Redis Cluster slot; nothing uses KEYS."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import redis
from helpers import claim, claim_one, complete, expire_leases, fail, queue_keys_in_db, release
from redis.crc import key_slot

import taskq
from taskq.keys import GlobalKeys, QueueKeys


def slot(key: str) -> int:
    """The Redis Cluster slot of ``key`` (redis-py's CRC16 of its hash tag)."""
    return int(key_slot(key.encode()))


# -- key layout -----------------------------------------------------------------------


def test_every_queue_key_carries_the_hash_tag() -> None:
    k = QueueKeys("taskq", "emails")
    names = [*k.all_fixed(), k.task("emails:abc"), k.idem("order-1"), k.wake, k.task_prefix, k.idem_prefix]
    assert all("{emails}" in name for name in names)
    assert {slot(name) for name in names} == {slot("emails")}


def test_global_keys_escape_braces_for_scan() -> None:
    g = GlobalKeys("taskq")
    assert g.queue_scan_pattern("emails") == "taskq:\\{emails\\}:*"
    with pytest.raises(taskq.InvalidQueueName):
        g.queue("a{b}")


def run_full_lifecycle(tq: taskq.TaskQueue, rc: redis.Redis, queue: str) -> None:
    """Touch every kind of key a queue has: every script, idempotency, config, DLQ."""
    tq.configure_queue(queue, aging_s=1.0)
    done = tq.enqueue("t", force=True, queue=queue, idempotency_key="once").id
    assert complete(tq, claim_one(tq, queue), 1) == 1
    tq.enqueue("t", force=True, queue=queue, idempotency_key="once")
    tq.enqueue("t", force=True, queue=queue, delay_s=3600)
    tq.enqueue("t", force=True, queue=queue, delay_s=0.001)
    tq.enqueue("t", force=True, queue=queue, priority=9, max_retries=0, idempotency_key="dies")
    tq.enqueue("t", force=True, queue=queue, priority=8)
    tq.enqueue("t", force=True, queue=queue, priority=1)
    doomed, retried, released = claim(tq, queue, 3)
    assert fail(tq, doomed)[0] == "dead"
    assert fail(tq, retried, retry_delay_ms=0)[0] == "scheduled"
    assert release(tq, released) == 1
    tq._exec.run(tq.ops.promote_due(queue))
    leased = claim(tq, queue, 1)
    tq._exec.run(tq.ops.extend(queue, [(leased[0].id, leased[0].token)], 10_000))
    tq.cancel(leased[0].id)
    expire_leases(tq, rc, queue, [leased[0].id])
    tq.cancel(tq.enqueue("t", force=True, queue=queue).id)
    dlq = tq.dead_letters(queue)
    assert dlq.requeue(all=True) == 1
    assert fail(tq, claim_one(tq, queue))[0] == "dead"
    assert dlq.purge(all=True) == 1
    tq.stats(queue)
    assert tq.get(done).status is taskq.TaskStatus.SUCCEEDED


def test_all_keys_of_a_queue_share_one_slot(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    queues = ["emails", "reports", "a", "x.y-z_0"]
    for q in queues:
        run_full_lifecycle(tq, rc, q)
    global_keys = {tq.ops.keys.queues}
    all_keys = set(rc.scan_iter(count=1000))
    per_queue = {q: queue_keys_in_db(rc, q) for q in queues}
    assert all_keys == global_keys | set().union(*per_queue.values()), "a key outside every queue"
    assert sorted(rc.smembers(tq.ops.keys.queues)) == sorted(queues)
    for q, names in per_queue.items():
        assert len(names) >= 10, names  # the lifecycle really ran
        assert {slot(n) for n in names} == {slot(q)}, f"{q} spans slots"
        k = tq.ops.queue_keys(q)
        fixed = set(k.all_fixed())
        assert {n for n in names if n not in fixed} <= {
            n for n in names if n.startswith((k.task_prefix, k.idem_prefix))
        }
    assert len({slot(q) for q in queues}) == len(queues)  # these four happen to spread


def test_prefix_is_honoured(redis_url: str, rc: redis.Redis) -> None:
    with taskq.TaskQueue(redis_url, prefix="myapp") as tq:
        run_full_lifecycle(tq, rc, "emails")
    assert all(name.startswith("myapp:") for name in rc.scan_iter())


# -- scripts --------------------------------------------------------------------------


def lua_files() -> list[tuple[str, str]]:
    root = resources.files("taskq").joinpath("lua")
    files = [(f.name, f.read_text()) for f in root.iterdir() if f.name.endswith(".lua")]
    files += [(f"lib/{f.name}", f.read_text()) for f in root.joinpath("lib").iterdir() if f.name.endswith(".lua")]
    return files


def test_no_script_uses_keys_or_cross_slot_commands() -> None:
    files = lua_files()
    assert len(files) >= 12
    forbidden = re.compile(r"""redis\.p?call\(\s*['"](KEYS|SCAN|FLUSHALL|FLUSHDB|SELECT|MOVE|RENAME)['"]""", re.I)
    for name, source in files:
        assert not forbidden.search(source), f"{name} calls a forbidden command"


def test_every_script_has_a_contract_header() -> None:
    for name, source in lua_files():
        if name.startswith("lib/"):
            continue
        header = source.split("]]", 1)[0]
        assert source.startswith("--[["), name
        assert "Returns" in header, f"{name}: header does not say what it returns"
        if "KEYS[" in source.split("]]", 1)[1]:
            assert "KEYS[1]" in header, f"{name}: header does not list KEYS"
        assert "ARGV[1]" in header, f"{name}: header does not list ARGV"


def test_every_script_is_registered() -> None:
    from taskq.scripts import SCRIPT_NAMES, all_scripts

    on_disk = {name.removesuffix(".lua") for name, _ in lua_files() if not name.startswith("lib/")}
    assert on_disk == set(SCRIPT_NAMES)
    include = re.compile(r"^--!include", re.MULTILINE)
    assert not any(include.search(s.source) for s in all_scripts()), "an include was not spliced in"
