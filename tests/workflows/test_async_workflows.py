"""The same workflow API on AsyncTaskQueue: submit, depends_on, workflow, cancel_workflow."""

from __future__ import annotations

import taskq


async def test_async_client_submits_and_reads_workflows(redis_url: str) -> None:
    tq = taskq.AsyncTaskQueue(redis_url)
    try:

        @tq.task(name="async.add")
        def add(a: int, b: int = 0) -> int:
            return a + b

        wf = await tq.submit(taskq.chain(add.s(1, 2), add.s(10)))
        assert isinstance(wf, taskq.WorkflowHandle) and len(wf.nodes) == 2
        parent = await add.enqueue(5)
        child = await add.enqueue(6, depends_on=[parent])
        assert (await tq.get(child.id)).status is taskq.TaskStatus.WAITING
        info = await tq.workflow(wf.id)
        assert [n.status for n in info.nodes] == ["queued", "waiting"]
        assert await tq.cancel_workflow(wf.id) == {"cancelled": 2, "cancelling": 0}
        assert (await wf.info()).state == "cancelled"
        worker = tq.start_worker(queues=["default"])
        try:
            assert await parent.result(timeout_s=10) == 5
            assert await child.result(timeout_s=10) == 6
        finally:
            worker.stop(grace_s=0)
    finally:
        await tq.aclose()
