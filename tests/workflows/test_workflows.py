"""Chains, groups with a callback, depends_on DAGs: driven through the plans (helpers.py), so
every transition is seen, and with a real background worker."""

from __future__ import annotations

import pytest
import redis
from helpers import claim, complete, expire_leases, fail

import taskq

Q = "default"


def _register(tq: taskq.TaskQueue) -> dict[str, taskq.TaskFunction]:
    @tq.task(max_retries=0)
    def add(a: int, b: int = 0) -> int:
        return a + b

    @tq.task(max_retries=0)
    def collect(results: list, tag: str = "") -> dict:
        return {"results": results, "tag": tag}

    return {"add": add, "collect": collect}


def _status(tq: taskq.TaskQueue, task_id: str) -> str:
    return tq.get(task_id).status.value


def test_chain_passes_each_result_to_the_next_step(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    wf = tq.submit(taskq.chain(f["add"].s(1, 2), f["add"].s(10), f["add"].s(b=100)))
    a, b, c = wf.nodes
    assert [_status(tq, i) for i in wf.nodes] == ["queued", "waiting", "waiting"]
    (ta,) = claim(tq)
    assert ta.id == a
    assert complete(tq, ta, 3) == 1
    (tb,) = claim(tq)
    assert tb.id == b and tb.args == [3, 10]
    complete(tq, tb, 13)
    (tc,) = claim(tq)
    assert tc.args == [13] and tc.kwargs == {"b": 100}
    complete(tq, tc, 113)
    assert wf.result(timeout_s=5) == 113
    info = tq.workflow(wf.id)
    assert info.state == "succeeded"
    assert [n.status for n in info.nodes] == ["succeeded"] * 3
    assert tq.get(c).workflow_id == wf.id


def test_a_failed_step_cancels_the_rest_of_the_chain_with_its_cause(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    wf = tq.submit(taskq.chain(f["add"].s(1), f["add"].s(), f["add"].s()))
    (ta,) = claim(tq)
    assert fail(tq, ta)[0] == "dead"
    b, c = tq.get(wf.nodes[1]), tq.get(wf.nodes[2])
    assert b.status is taskq.TaskStatus.CANCELLED and b.error_type == "ParentFailed" and wf.nodes[0] in (b.error or "")
    assert c.status is taskq.TaskStatus.CANCELLED and wf.nodes[1] in (c.error or "")
    assert claim(tq) == []
    assert tq.workflow(wf.id).state == "failed"
    with pytest.raises(taskq.TaskCancelled):
        wf.result(timeout_s=5)


def test_group_callback_gets_results_in_member_order_once(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    wf = tq.submit(taskq.group([f["add"].s(i) for i in range(4)], callback=f["collect"].s(tag="t")))
    members = claim(tq, n=4)
    assert [m.id for m in members] == wf.nodes[:4]
    for m in reversed(members):  # finishing out of order does not change the order of results
        assert _status(tq, wf.sinks[0]) == "waiting"
        complete(tq, m, m.args[0] * 10)
    (cb,) = claim(tq, n=10)
    assert cb.args == [[0, 10, 20, 30]] and cb.kwargs == {"tag": "t"}
    complete(tq, cb, "done")
    assert claim(tq, n=10) == []
    assert tq.workflow(wf.id).state == "succeeded"


@pytest.mark.parametrize("on_error", ["fail", "pass"])
def test_group_member_failure_policy(tq: taskq.TaskQueue, on_error: str) -> None:
    f = _register(tq)
    wf = tq.submit(taskq.group(f["add"].s(1), f["add"].s(2), callback=f["collect"].s(), on_error=on_error))  # type: ignore[arg-type]
    m1, m2 = claim(tq, n=2)
    complete(tq, m1, 1)
    fail(tq, m2, error_type="KeyError", error="nope")
    if on_error == "fail":
        cb = tq.get(wf.sinks[0])
        assert cb.status is taskq.TaskStatus.CANCELLED and cb.error_type == "ParentFailed"
        assert claim(tq) == []
        assert tq.workflow(wf.id).state == "failed"
    else:
        (cb,) = claim(tq)
        assert cb.args[0][0] == 1
        assert cb.args[0][1] == {"error_type": "KeyError", "error": "nope", "task_id": m2.id}
        complete(tq, cb, "ok")
        assert tq.workflow(wf.id).state == "failed"  # a member failed, even though the callback ran


def test_a_retried_member_is_counted_once(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    f = _register(tq)
    retried = f["add"].s(1).set(max_retries=3)
    wf = tq.submit(taskq.group(retried, f["add"].s(2).set(max_retries=3), callback=f["collect"].s()))
    m1, m2 = claim(tq, n=2)
    assert fail(tq, m1, retry_delay_ms=0)[0] == "scheduled"  # a retry is no outcome
    expire_leases(tq, rc, Q, [m2.id])  # m2's worker died: requeued, not counted
    complete(tq, m2, 2)  # the stale lease is refused
    assert _status(tq, wf.sinks[0]) == "waiting"
    again = claim(tq, n=2)
    assert sorted(t.id for t in again) == sorted([m1.id, m2.id])
    for t in again:
        complete(tq, t, t.args[0])
    (cb,) = claim(tq)
    assert cb.args == [[1, 2]]


def test_depends_on_waits_for_every_parent(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    p1 = f["add"].enqueue(1)
    p2 = tq.enqueue(f["add"].name, [2])
    child = f["add"].enqueue(5, depends_on=[p1, p2.id])
    assert child.status is taskq.TaskStatus.WAITING
    t1, t2 = claim(tq, n=2)
    complete(tq, t1, 1)
    assert child.status is taskq.TaskStatus.WAITING
    complete(tq, t2, 2)
    (tc,) = claim(tq)
    assert tc.id == child.id and tc.args == [5]  # depends_on feeds nothing
    wid = tq.get(child.id).workflow_id
    assert wid and tq.get(p1.id).workflow_id == wid
    # a second dependent of a parent that already succeeded starts at once, in the same workflow
    later = f["add"].enqueue(7, depends_on=[p1])
    assert later.status is taskq.TaskStatus.QUEUED and tq.get(later.id).workflow_id == wid


def test_depends_on_a_failed_task_cancels_at_once(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    p = f["add"].enqueue(1)
    fail(tq, claim(tq)[0])
    child = f["add"].enqueue(2, depends_on=[p])
    assert child.status is taskq.TaskStatus.CANCELLED


def test_depends_on_an_unknown_task_writes_nothing(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    f = _register(tq)
    before = set(rc.keys("*"))
    with pytest.raises(taskq.TaskNotFound):
        f["add"].enqueue(1, depends_on=["default:0123456789abcdef"])
    assert set(rc.keys("*")) - before <= {"taskq:queues"}


def test_dag_cycles_and_unknown_names_are_refused_before_writing(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    f = _register(tq)
    dag = taskq.DAG().add("a", f["add"].s(1), after=["c"]).add("b", f["add"].s(2), after=["a"])
    dag.add("c", f["add"].s(3), after=["b"])
    with pytest.raises(taskq.WorkflowCycle, match="cycle"):
        tq.submit(dag)
    with pytest.raises(taskq.WorkflowCycle, match="never added"):
        tq.submit(taskq.DAG().add("a", f["add"].s(1), after=["zz"]))
    assert rc.keys("*") == []


def test_dag_diamond_with_results(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    dag = taskq.DAG()
    dag.add("top", f["add"].s(1))
    dag.add("left", f["add"].s(b=1), after=["top"], results=True)
    dag.add("right", f["add"].s(5, b=2), after=["top"])
    dag.add("bottom", f["collect"].s(), after=["left", "right"], results=True)
    tq.submit(dag)
    (top,) = claim(tq)
    complete(tq, top, 1)
    left, right = claim(tq, n=2)
    assert left.args == [[1]] and right.args == [5]
    complete(tq, left, "L")
    complete(tq, right, "R")
    (bottom,) = claim(tq)
    assert bottom.args == [["L", "R"]]


def test_cancel_workflow_cancels_what_has_not_run(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    wf = tq.submit(taskq.group(f["add"].s(1), f["add"].s(2), callback=f["collect"].s(), on_error="pass"))
    (running,) = claim(tq, n=1)
    assert tq.cancel_workflow(wf.id) == {"cancelled": 2, "cancelling": 1}
    assert tq.get(running.id).cancel_requested
    assert [_status(tq, i) for i in wf.nodes[1:]] == ["cancelled", "cancelled"]
    complete(tq, running, 1)  # it finished anyway: nothing is released
    assert claim(tq, n=5) == []
    info = tq.workflow(wf.id)
    assert info.state == "cancelled" and info.cancel_requested
    with pytest.raises(taskq.WorkflowNotFound):
        tq.workflow("nope")
    with pytest.raises(taskq.WorkflowNotFound):
        tq.cancel_workflow("nope")


def test_cancelling_a_waiting_node_settles_it(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    wf = tq.submit(taskq.chain(f["add"].s(1), f["add"].s(), f["add"].s()))
    assert tq.cancel(wf.nodes[1]) == "cancelled"
    assert _status(tq, wf.nodes[2]) == "cancelled"
    complete(tq, claim(tq)[0], 1)
    assert claim(tq) == []
    assert tq.workflow(wf.id).state == "failed"


def test_workflow_keys_expire_with_retention(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    f = _register(tq)
    tq.submit(taskq.chain(f["add"].s(1).set(result_ttl_s=0), f["add"].s().set(result_ttl_s=0)))
    complete(tq, claim(tq)[0], 1)
    complete(tq, claim(tq)[0], 2)
    assert [k for k in rc.keys("*") if "{wf:" in k or ":t:" in k] == []


def test_a_worker_runs_a_workflow_end_to_end(tq: taskq.TaskQueue, workers: list) -> None:
    f = _register(tq)
    workers.append(tq.start_worker(queues=[Q], concurrency=4))
    wf = tq.submit(
        taskq.chain(taskq.group([f["add"].s(i, i) for i in range(5)], callback=f["collect"].s()), f["collect"].s())
    )
    out = wf.result(timeout_s=20)
    assert out == {"results": {"results": [0, 2, 4, 6, 8], "tag": ""}, "tag": ""}


def test_a_group_larger_than_luas_unpack_limit_releases_its_callback(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    n = 9000  # Lua's unpack() stops near 8000 values: the callback's parents are read in chunks
    wf = tq.submit(taskq.group([f["add"].s(i) for i in range(n)], callback=f["collect"].s()))
    done = 0
    while done < n:
        batch = claim(tq, n=1000)
        assert wf.sinks[0] not in [t.id for t in batch]  # the callback waits for the last member
        tq._exec.run(tq.ops.finish([tq.ops.complete_command(t, str(t.args[0])) for t in batch]))
        done += len(batch)
    (cb,) = claim(tq)
    assert cb.id == wf.sinks[0] and cb.args == [list(range(n))]


def test_a_chain_across_queues_releases_each_step_into_its_own_queue(tq: taskq.TaskQueue) -> None:
    f = _register(tq)
    wf = tq.submit(taskq.chain(f["add"].s(1, 1).set(queue="first"), f["add"].s(5).set(queue="second", priority=9)))
    assert claim(tq, "second") == []
    (a,) = claim(tq, "first")
    complete(tq, a, 2)
    (b,) = claim(tq, "second")
    assert b.id == wf.nodes[1] and b.args == [2, 5] and b.priority == 9
    assert set(tq.queues()) >= {"first", "second"}


def test_shapes_compile_to_nodes_parents_first() -> None:
    from taskq.workflows import compile_workflow

    s = taskq.signature
    nodes = compile_workflow(
        taskq.chain(s("a"), taskq.group(taskq.chain(s("b"), s("c")), s("d"), callback=s("e"), on_error="pass"), s("f"))
    )
    shape = [(n.sig.name, n.parents, n.feed, n.policy) for n in nodes]
    assert shape == [
        ("a", [], "none", "fail"),
        ("b", [0], "prev", "fail"),  # each member of the group is fed a's result
        ("c", [1], "prev", "fail"),
        ("d", [0], "prev", "fail"),
        ("e", [2, 3], "all", "pass"),  # the callback: the chain's last step and d, in member order
        ("f", [4], "prev", "fail"),
    ]
    # a group without a callback ends with several nodes: the next step gets all their results
    nodes = compile_workflow(taskq.chain(taskq.group(s("x"), s("y")), s("z")))
    assert [(n.sig.name, n.parents, n.feed) for n in nodes][-1] == ("z", [0, 1], "all")
    with pytest.raises(taskq.InvalidOption):
        taskq.group()
    with pytest.raises(taskq.InvalidOption):
        taskq.chain(s("a"), "not a signature")  # type: ignore[arg-type]
    with pytest.raises(taskq.InvalidOption):
        s("a").set(delay_s=3)
