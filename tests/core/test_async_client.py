"""The asyncio client: the same operations as the blocking one, over redis.asyncio."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

import taskq
from taskq.ops import ClaimedTask


@pytest.fixture
async def aq(redis_url: str) -> AsyncIterator[taskq.AsyncTaskQueue]:
    async with taskq.AsyncTaskQueue(redis_url) as queue:
        yield queue


async def claim(aq: taskq.AsyncTaskQueue, queue: str = "default", n: int = 1) -> list[ClaimedTask]:
    return await aq._exec.run(aq.ops.claim(queue, n, 60_000, "w-async"))


async def finish(aq: taskq.AsyncTaskQueue, command: Any) -> Any:
    return (await aq._exec.run(aq.ops.finish([command])))[0]


async def test_enqueue_get_and_complete(aq: taskq.AsyncTaskQueue) -> None:
    handle = await aq.enqueue("t", force=True, args=[1], kwargs={"k": "v"}, priority=8)
    assert isinstance(handle, taskq.AsyncTaskHandle)
    task = await handle.info()
    assert (task.status, task.priority, task.args, task.kwargs) == (taskq.TaskStatus.QUEUED, 8, [1], {"k": "v"})
    (claimed,) = await claim(aq)
    assert await finish(aq, aq.ops.complete_command(claimed, json.dumps({"ok": True}))) == 1
    assert await handle.result(timeout_s=1) == {"ok": True}
    assert await aq.queues() == ["default"]


async def test_result_waits_for_a_concurrent_worker(aq: taskq.AsyncTaskQueue) -> None:
    handle = await aq.enqueue("t", force=True)

    async def worker() -> None:
        await asyncio.sleep(0.01)
        (claimed,) = await claim(aq)
        await finish(aq, aq.ops.complete_command(claimed, "42"))

    waiter = asyncio.create_task(handle.result(timeout_s=2))
    await worker()
    assert await waiter == 42


async def test_result_timeout(aq: taskq.AsyncTaskQueue) -> None:
    handle = await aq.enqueue("t", force=True)
    with pytest.raises(taskq.ResultTimeout, match="still queued"):
        await handle.result(timeout_s=0.02)


async def test_registered_task_function(aq: taskq.AsyncTaskQueue) -> None:
    @aq.task(queue="emails", priority=7)
    async def send(to: str) -> str:
        return to

    handle = await send.enqueue("a@b.c", priority=9)
    task = await aq.get(handle.id)
    assert (task.queue, task.priority, task.args) == ("emails", 9, ["a@b.c"])
    assert await send("direct") == "direct"
    with pytest.raises(taskq.InvalidArguments):
        await send.enqueue()
    with pytest.raises(taskq.UnknownTaskName):
        await aq.enqueue("nope")


async def test_priority_order_and_enqueue_many(aq: taskq.AsyncTaskQueue) -> None:
    handles = await aq.enqueue_many([{"name": "t", "force": True, "priority": p} for p in (1, 10, 5, 10)])
    claimed = [t.id for t in await claim(aq, n=10)]
    assert claimed == [handles[1].id, handles[3].id, handles[2].id, handles[0].id]


async def test_validation_writes_nothing(aq: taskq.AsyncTaskQueue, rc: redis.Redis) -> None:
    with pytest.raises(taskq.InvalidPriority):
        await aq.enqueue("t", force=True, priority=0)
    with pytest.raises(taskq.NotSerializable):
        await aq.enqueue("t", force=True, args=[object()])
    with pytest.raises(taskq.InvalidPriority):
        await aq.enqueue_many([{"name": "t", "force": True}, {"name": "t", "force": True, "priority": 11}])
    with pytest.raises(taskq.TaskNotFound):
        await aq.get("default:0000")
    assert rc.dbsize() == 0


async def test_delay_and_cancel(aq: taskq.AsyncTaskQueue) -> None:
    later = await aq.enqueue("t", force=True, delay_s=60)
    assert (await later.info()).status is taskq.TaskStatus.SCHEDULED
    assert await later.cancel() == "cancelled"
    with pytest.raises(taskq.TaskCancelled):
        await later.result(timeout_s=1)
    running = await aq.enqueue("t", force=True)
    await claim(aq)
    assert await aq.cancel(running.id) == "cancelling"
    with pytest.raises(taskq.NotCancellable):
        await later.cancel()


async def test_idempotency(aq: taskq.AsyncTaskQueue) -> None:
    first = await aq.enqueue("t", force=True, idempotency_key="once")
    assert (await aq.enqueue("t", force=True, idempotency_key="once")).id == first.id
    assert (await aq.stats()).queued == 1


async def test_fail_dead_letters_and_redrive(aq: taskq.AsyncTaskQueue) -> None:
    handle = await aq.enqueue("t", force=True, max_retries=0)
    (claimed,) = await claim(aq)
    reply = await finish(aq, aq.ops.fail_command(claimed, "KeyError", "'x'", "Traceback", 0))
    assert reply[0] == "dead"
    with pytest.raises(taskq.TaskFailed) as info:
        await handle.result(timeout_s=1)
    assert (info.value.error_type, info.value.traceback) == ("KeyError", "Traceback")
    dlq = aq.dead_letters()
    (dead,) = await dlq.list()
    assert (dead.id, dead.error, dead.attempts) == (handle.id, "'x'", 1)
    with pytest.raises(taskq.InvalidOption):
        await dlq.requeue()
    assert await dlq.requeue(error_type="KeyError") == 1
    assert (await handle.info()).status is taskq.TaskStatus.QUEUED
    (claimed,) = await claim(aq)
    await finish(aq, aq.ops.fail_command(claimed, "KeyError", "'x'", "Traceback", -1))
    assert await dlq.purge(all=True) == 1
    assert await dlq.list() == []


async def test_stale_token_is_refused(aq: taskq.AsyncTaskQueue) -> None:
    await aq.enqueue("t", force=True)
    (claimed,) = await claim(aq)
    assert await aq._exec.run(aq.ops.release("default", [(claimed.id, claimed.token)])) == 1
    reply = await finish(aq, aq.ops.complete_command(claimed, "1"))
    assert isinstance(reply, taskq.LeaseLost)


async def test_stats_and_configure(aq: taskq.AsyncTaskQueue) -> None:
    await aq.configure_queue("q", aging_s=0.5)
    await aq.enqueue("t", force=True, queue="q")
    await aq.enqueue("t", force=True, queue="q", delay_s=60)
    stats = await aq.stats("q")
    assert (stats.queued, stats.scheduled, stats.pending) == (1, 1, 2)
    assert [s.queue for s in await aq.all_stats()] == ["q"]
    with pytest.raises(taskq.InvalidOption):
        await aq.configure_queue("q", aging_s=0)


async def test_noscript_is_healed(aq: taskq.AsyncTaskQueue, rc: redis.Redis) -> None:
    await aq.enqueue("t", force=True)
    rc.script_flush()
    handles = await aq.enqueue_many([{"name": "t", "force": True}] * 3)
    assert (await aq.stats()).queued == 4
    rc.script_flush()
    assert await aq.cancel(handles[0].id) == "cancelled"


async def test_sync_and_async_clients_share_one_truth(aq: taskq.AsyncTaskQueue, tq: taskq.TaskQueue) -> None:
    handle = await aq.enqueue("t", force=True, priority=3)
    assert tq.get(handle.id).priority == 3
    assert tq.cancel(handle.id) == "cancelled"
    assert (await handle.info()).status is taskq.TaskStatus.CANCELLED
