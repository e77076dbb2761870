import taskq


def test_enqueue_claim_complete_roundtrip(tq: taskq.TaskQueue) -> None:
    @tq.task(queue="emails", priority=7)
    def send(to: str) -> str:
        return to

    handle = send.enqueue("a@b.c", priority=9)
    assert tq.get(handle.id).status is taskq.TaskStatus.QUEUED
    (claimed,) = tq._exec.run(tq.ops.claim("emails", 10, 30_000, "w1"))
    assert claimed.id == handle.id and claimed.priority == 9 and claimed.attempts == 1
    assert tq._exec.run(tq.ops.finish([tq.ops.complete_command(claimed, '"done"')])) == [1]
    assert handle.result(timeout_s=1) == "done"
