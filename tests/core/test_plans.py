"""Fast unit tests of the sans-IO plans and flows: build a plan, feed its parse function a
reply as Redis would send it. No server."""

from __future__ import annotations

import json
from typing import Any

import pytest

import taskq
from taskq.flows import dead_select_flow, enqueue_flow, result_flow
from taskq.ops import MAX_BATCH, ClaimedTask, Operations, chunks
from taskq.plan import Flow, Plan
from taskq.registry import make_task_def
from taskq.task import DEFAULT_BACKOFF, TaskSpec, backoff_from_record
from taskq.telemetry import WorkerHealth

OPS = Operations()


def record(status: str, **fields: Any) -> dict[str, str]:
    """A task hash as enqueue.lua writes it (id and queue left out)."""
    return {"name": "t", "status": status, "priority": "5", "enqueued_ms": "1000", **fields}


def drive(flow: Flow[Any], replies: list[Any]) -> tuple[Any, list[Plan[Any] | float]]:
    """Run a flow, answering each plan with the next of ``replies`` (its raw replies list)
    and each sleep with None; returns (result, what it yielded)."""
    yielded: list[Plan[Any] | float] = []
    answers = iter(replies)
    try:
        step = next(flow)
        while True:
            yielded.append(step)
            step = flow.send(step.parse(next(answers)) if isinstance(step, Plan) else None)
    except StopIteration as stop:
        return stop.value, yielded


def spec(queue: str = "default") -> TaskSpec:
    return TaskSpec.build("t", queue=queue)


def test_chunks() -> None:
    assert [list(c) for c in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert list(chunks([])) == []
    assert [len(c) for c in chunks(range(2 * MAX_BATCH + 1))] == [MAX_BATCH, MAX_BATCH, 1]


def test_enqueue_plan_groups_by_queue_and_answers_in_order() -> None:
    specs = [spec("a"), spec("b"), spec("a")]
    plan = OPS.enqueue(specs)
    assert len(plan.commands) == 2  # one script call per queue
    assert all(c.args[0] == "EVALSHA" and c.script is not None for c in plan.commands)
    # each call answers [id, new?, id, new?, ...] for its own tasks
    replies = [[specs[0].id, 1, "earlier-id", 0], [specs[1].id, 1]]
    assert plan.parse(replies) == [specs[0].id, specs[1].id, "earlier-id"]


def test_enqueue_plan_splits_a_queue_at_max_batch() -> None:
    assert len(OPS.enqueue([spec()] * (MAX_BATCH + 1)).commands) == 2


def test_enqueue_flow_registers_new_queues_once() -> None:
    known: set[str] = set()
    specs = [spec("a"), spec("b")]
    ids, yielded = drive(enqueue_flow(OPS, specs, known), [[2], [[specs[0].id, 1], [specs[1].id, 1]]])
    assert ids == [s.id for s in specs] and known == {"a", "b"}
    assert isinstance(yielded[0], Plan) and yielded[0].commands[0].args[:1] == ("SADD",)
    _, again = drive(enqueue_flow(OPS, [spec("a")], known), [[["x", 1]]])
    assert len(again) == 1  # a known queue: the enqueue only
    assert drive(enqueue_flow(OPS, [], known), []) == ([], [])


def test_get_plan() -> None:
    plan = OPS.get("default:0abc")
    with pytest.raises(taskq.TaskNotFound):
        plan.parse([{}])
    task = plan.parse([record("queued")])
    assert task.id == "default:0abc" and task.queue == "default"
    assert task.status is taskq.TaskStatus.QUEUED and task.backoff == DEFAULT_BACKOFF


def test_backoff_from_record() -> None:
    assert backoff_from_record(None, None, None, None) is DEFAULT_BACKOFF
    b = backoff_from_record("250", None, "100", "0")
    assert (b.base_s, b.cap_s, b.min_s, b.jitter) == (0.25, DEFAULT_BACKOFF.cap_s, 0.1, 0.0)


def test_result_flow_polls_with_growing_pauses_then_returns() -> None:
    flow = result_flow(OPS, "default:0f", None)
    result, yielded = drive(
        flow,
        [[record("queued")], [record("running")], [record("running")], [record("succeeded", result="42")]],
    )
    pauses = [y for y in yielded if isinstance(y, float)]
    assert result == 42 and pauses == sorted(pauses) and len(pauses) == 3 and pauses[0] < pauses[-1]


def test_result_flow_raises_for_dead_and_cancelled() -> None:
    dead = record("dead", error_type="ValueError", error="boom", traceback="tb")
    with pytest.raises(taskq.TaskFailed, match="boom"):
        drive(result_flow(OPS, "default:0f", None), [[dead]])
    with pytest.raises(taskq.TaskCancelled):
        drive(result_flow(OPS, "default:0f", None), [[record("cancelled")]])
    with pytest.raises(taskq.ResultTimeout):
        drive(result_flow(OPS, "default:0f", 0), [[record("queued")]])


def test_dead_selection_needs_exactly_one_selector() -> None:
    with pytest.raises(taskq.InvalidOption, match="exactly one"):
        drive(dead_select_flow(OPS, "default", None, None, None, False), [])
    with pytest.raises(taskq.InvalidOption):
        drive(dead_select_flow(OPS, "default", ["a"], None, None, True), [])
    assert drive(dead_select_flow(OPS, "default", ["a", "b"], None, None, False), []) == (["a", "b"], [])


def claimed(queue: str = "default", task_id: str = "default:01") -> ClaimedTask:
    return ClaimedTask(task_id, queue, "tok", 1, "t", [], {}, None, 3, DEFAULT_BACKOFF, 5)


def test_finish_plan_batches_completions_and_reads_each_answer() -> None:
    a, b, c = claimed(task_id="default:0a"), claimed(task_id="default:0b"), claimed(task_id="default:0c")
    plan = OPS.finish(
        [OPS.complete_command(a, "1"), OPS.fail_command(b, "E", "e", "", 100), OPS.complete_command(c, "2")]
    )
    assert len(plan.commands) == 2 and plan.errors_inline  # the completions share one call
    out = plan.parse([[1, 0], ["scheduled", "5000"]])
    assert out[0] == 1 and out[1] == ("scheduled", 5000)
    assert isinstance(out[2], taskq.LeaseLost)  # 0: the token no longer held the lease
    failed = plan.parse([[1, 1], Exception("TASKQ LEASE_LOST task default:0b is no longer leased")])
    assert isinstance(failed[1], taskq.LeaseLost)


def test_list_page_plan_and_cursors() -> None:
    plan = OPS.list_page("default", "queued", None, 2)
    assert plan.commands[0].args[-3:] == ("-inf", "", 2)
    page = plan.parse([[1, "default:0a", "10", ["name", "t", "status", "queued", "priority", "5", "enqueued_ms", "1"],
                        "default:0b", "10", []]])  # fmt: skip
    assert [t.id for t in page.tasks] == ["default:0a"]  # b's record expired: skipped, cursor still moves
    assert page.next_cursor == "10/default:0b"
    assert OPS.list_page("default", "dead", page.next_cursor, 5).commands[0].args[-3:] == ("10", "default:0b", 5)
    assert plan.parse([[0]]) == taskq.TaskPage([], None)
    for bad in ("x", "inf/a", "1/"):
        with pytest.raises(taskq.InvalidOption, match="cursor"):
            OPS.list_page("default", "queued", bad, 5)
    with pytest.raises(taskq.InvalidOption, match="state"):
        OPS.list_page("default", "succeeded", None, 5)
    with pytest.raises(taskq.InvalidOption, match="limit"):
        OPS.list_page("default", "queued", None, MAX_BATCH + 1)


def test_registered_tasks_flow_drops_old_entries() -> None:
    definition = make_task_def(
        lambda to: None, name="send", queue="emails", priority=7, max_retries=1, timeout_s=None, backoff=None,
        result_ttl_s=None,
    )  # fmt: skip
    now_ms = 10 * 86_400_000
    raw = {"send": definition.published("w1", now_ms - 1000), "old": definition.published("w0", 0), "bad": "{"}
    result, yielded = drive(OPS.registered_tasks(), [[(now_ms // 1000, 0), raw], [1]])
    assert list(result) == ["send"] and result["send"].queue == "emails" and result["send"].priority == 7
    assert result["send"].parameters["required"] == ["to"] and result["send"].worker == "w1"
    assert isinstance(yielded[1], Plan) and yielded[1].commands[0].args == ("HDEL", "taskq:tasks", "old")


def test_heartbeat_plan_publishes_tasks() -> None:
    definition = make_task_def(
        lambda: None, name="send", queue="emails", priority=None, max_retries=1, timeout_s=None, backoff=None,
        result_ttl_s=None,
    )  # fmt: skip
    plan = OPS.worker_heartbeat({"id": "w1"}, 3.0, registry_ms=5000, tasks=[definition])
    hset = plan.commands[-1].args
    assert hset[:3] == ("HSET", "taskq:tasks", "send") and json.loads(hset[3])["last_seen_ms"] == 5000
    assert plan.parse([[5000, 4000], 1, 0, 1]) == (5000, 4000)


def test_workers_flow_decodes_snapshots_and_forgets_old_gone_ones() -> None:
    now_ms = 100_000_000
    registry = ["alive", str(now_ms - 100), "gone", str(now_ms - 5000), "ancient", "1"]
    raw = {"heartbeat_ms": str(now_ms - 100), "interval_ms": "1000", "pid": "7", "queues": '["q"]', "current": "[]"}
    result, yielded = drive(OPS.workers(), [[(now_ms // 1000, 0), registry], [raw, {}, {}], [1]])
    assert [(w.id, w.health) for w in result] == [("alive", WorkerHealth.ALIVE), ("gone", WorkerHealth.GONE)]
    assert result[0].pid == 7 and result[0].queues == ("q",)
    assert isinstance(yielded[-1], Plan) and yielded[-1].commands[0].args == ("ZREM", "taskq:workers", "ancient")
