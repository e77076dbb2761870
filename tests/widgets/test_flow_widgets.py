"""StateFlow and Timeline against a real Redis and real workers: tokens and bars follow the
task events (enqueue, claim, finish), a retry goes through backoff and leaves a gap on the
timeline, a dead task lands in dead and a re-drive takes it out, a purge moves it from dead
to purged, a killed worker's attempt ends as lost and the task comes back on another worker,
and above a rate StateFlow samples its tokens while still counting every move."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import wait_until
from taskq_widgets import Playground, StateFlow, Timeline
from taskq_widgets.stateflow import ARROW, LANES, FlowState
from taskq_widgets.timeline import TimelineState

import taskq
from taskq.backoff import Backoff

QUEUE = "flow"
BACKOFF_S = 0.3


@pytest.fixture
def flow(tq: taskq.TaskQueue) -> Iterator[StateFlow]:
    widget = StateFlow(tq, queues=[QUEUE], interval_s=0.05, max_tokens_s=1000)
    yield widget
    widget.close()


@pytest.fixture
def timeline(tq: taskq.TaskQueue) -> Iterator[Timeline]:
    widget = Timeline(tq, queues=[QUEUE], interval_s=0.05, window_s=60)
    yield widget
    widget.close()


def _settled(widget: StateFlow | Timeline, check: object, what: str) -> None:
    """Refresh (read the new events) until ``check()`` holds."""

    def ready() -> bool:
        widget.refresh()
        return bool(check())  # type: ignore[operator]

    wait_until(ready, timeout_s=30, what=what)


def test_tokens_move_through_the_states(
    tq: taskq.TaskQueue, flow: StateFlow, timeline: Timeline, workers: list[taskq.BackgroundWorker]
) -> None:
    @tq.task(queue=QUEUE)
    def add(a: int, b: int) -> int:
        return a + b

    assert flow.refresh() == 0 and flow.moves_seen == 0  # only events after it was made
    urgent = [add.enqueue(i, 1, priority=9) for i in range(2)]
    low = add.enqueue(0, 0, priority=2)
    later = add.enqueue(0, 0, delay_s=3600)
    assert flow.refresh() == 4
    assert (flow.occupancy["q9"], flow.occupancy["q2"], flow.occupancy["scheduled"]) == (2, 1, 1)
    assert flow.edges["new>queued"] == 3 and flow.edges["new>scheduled"] == 1
    # every move was sent to the front end as a token (below the sampling rate)
    moves = flow.batch["moves"]
    assert [m[1] for m in moves] == [h.id for h in [*urgent, low, later]]
    assert [(m[3], m[4], m[5]) for m in moves] == [
        ("new", "q9", 9),
        ("new", "q9", 9),
        ("new", "q2", 2),
        ("new", "scheduled", 5),
    ]
    assert (flow.moves_seen, flow.moves_shown, flow.sampling) == (4, 4, False)

    workers.append(tq.start_worker(queues=[QUEUE], concurrency=2))
    _settled(flow, lambda: flow.occupancy["succeeded"] == 3, "3 tokens in succeeded")
    assert sum(flow.occupancy[q] for q in LANES) == 0 and flow.occupancy["scheduled"] == 1
    assert flow.edges["queued>running"] == 3 and flow.edges["running>succeeded"] == 3
    # the running nodes are the worker's slots: at most its concurrency of them
    worker_id = workers[0].worker.id
    assert flow.slots and {s.rpartition("#")[0] for s in flow.slots} == {worker_id}
    assert {s.rpartition("#")[2] for s in flow.slots} <= {"0", "1"}
    started = [m for m in flow.recent if m[2] == "started"]
    assert {m[1] for m in started} == {h.id for h in [*urgent, low]}
    assert started[-1][1] == low.id  # the high-priority ones jumped the line
    assert all(m[3] == f"q{m[5]}" and m[4] in flow.slots for m in started)

    _settled(timeline, lambda: len(timeline.bars) == 3 and all(b["end_ms"] for b in timeline.bars), "3 bars ended")
    assert {b["outcome"] for b in timeline.bars} == {"succeeded"}
    assert set(timeline.rows) <= set(flow.slots)
    assert all(b["end_ms"] >= b["start_ms"] for b in timeline.bars)
    assert "taskq-timeline-static" in timeline._repr_html_() and timeline.bars[0]["id"] in timeline._repr_html_()
    html = flow._repr_html_()
    assert "taskq-stateflow-static" in html and "queued \u2192 running" in html


def test_retry_backoff_gap_dead_and_redrive(
    tq: taskq.TaskQueue, flow: StateFlow, timeline: Timeline, workers: list[taskq.BackgroundWorker]
) -> None:
    @tq.task(queue=QUEUE, max_retries=1, backoff=Backoff(base_s=BACKOFF_S, cap_s=BACKOFF_S, min_s=BACKOFF_S, jitter=0))
    def broken() -> None:
        raise RuntimeError("always")

    handle = broken.enqueue()
    workers.append(tq.start_worker(queues=[QUEUE], concurrency=1))
    _settled(flow, lambda: flow.occupancy["dead"] == 1, "the task in dead")
    assert flow.edges["running>backoff"] == 1 and flow.edges["backoff>queued"] == 1
    assert flow.edges["running>dead"] == 1 and flow.edges["queued>running"] == 2
    assert [m[2] for m in flow.recent] == ["enqueued", "started", "retried", "queued", "started", "dead"]
    assert flow.recent[2][4] == "backoff" and flow.recent[-1][4] == "dead"

    _settled(
        timeline,
        lambda: len(timeline.attempts(handle.id)) == 2 and timeline.attempts(handle.id)[1]["end_ms"],
        "2 attempts",
    )
    first, second = timeline.attempts(handle.id)
    assert (first["attempt"], first["outcome"], second["attempt"], second["outcome"]) == (1, "retried", 2, "dead")
    assert second["start_ms"] - first["end_ms"] >= BACKOFF_S * 1000  # the backoff gap

    workers[0].stop(grace_s=0)
    assert tq.dead_letters(QUEUE).requeue(all=True) == 1
    _settled(flow, lambda: flow.edges["dead>queued"] == 1, "the re-drive")
    assert flow.occupancy["dead"] == 0 and flow.occupancy["q5"] == 1


def test_purge_moves_dead_tasks_to_purged(
    tq: taskq.TaskQueue, flow: StateFlow, timeline: Timeline, workers: list[taskq.BackgroundWorker]
) -> None:
    @tq.task(queue=QUEUE, max_retries=0)
    def doomed(i: int) -> None:
        raise ValueError(i)

    ids = [doomed.enqueue(i, priority=3).id for i in range(3)]
    workers.append(tq.start_worker(queues=[QUEUE], concurrency=3))
    _settled(flow, lambda: flow.occupancy["dead"] == 3, "3 tokens in dead")
    _settled(timeline, lambda: sum(1 for b in timeline.bars if b["outcome"] == "dead") == 3, "3 dead bars")
    workers[0].stop(grace_s=0)
    dlq = tq.dead_letters(QUEUE)
    assert dlq.purge(ids[:2]) == 2
    _settled(flow, lambda: flow.occupancy["purged"] == 2, "2 tokens in purged")
    assert flow.occupancy["dead"] == 1 and flow.edges["dead>purged"] == 2
    assert [(m[2], m[1], m[3], m[4], m[5]) for m in flow.recent[-2:]] == [
        ("purged", ids[0], "dead", "purged", 3),
        ("purged", ids[1], "dead", "purged", 3),
    ]
    assert set(flow.state.where) == {ids[2]}  # purged tasks are no longer tracked
    html = flow._repr_html_()
    assert f"dead{ARROW}purged</td><td style" in html and ">purged</td>" in html
    assert dlq.purge(all=True) == 1
    _settled(flow, lambda: flow.occupancy["purged"] == 3, "the last token in purged")
    assert flow.occupancy["dead"] == 0 and flow.edges["dead>purged"] == 3
    timeline.refresh()  # the bars had ended as dead already: a purge leaves them as they were
    assert sorted(b["id"] for b in timeline.bars if b["outcome"] == "dead") == sorted(ids)


def _event(
    etype: str,
    task_id: str,
    t_ms: int,
    priority: int | None = None,
    attempt: int | None = None,
    worker: str | None = None,
) -> taskq.Event:
    return taskq.Event(etype, task_id, QUEUE, priority, attempt, worker, stream_id=f"{t_ms}-0", index=0)


def test_purge_of_a_task_placed_before_the_widget_and_unknown_event_types() -> None:
    state = FlowState(max_tokens_s=100)
    # dead before the widget started: it was never counted in dead, so dead stays at 0
    move = state.apply(_event("purged", "q:old", 1000, priority=4, attempt=3))
    assert move is not None and move[3:5] == ["dead", "purged"]
    assert (state.occupancy["dead"], state.occupancy["purged"], state.edges["dead>purged"]) == (0, 1, 1)
    assert "q:old" not in state.where
    # an event type this widget does not know moves nothing and breaks nothing
    before = (dict(state.occupancy), dict(state.edges), state.seen)
    assert state.apply(_event("archived", "q:old", 1001)) is None
    assert (dict(state.occupancy), dict(state.edges), state.seen) == before


def test_a_purge_ends_a_timeline_bar_whose_dead_event_was_missed() -> None:
    line = TimelineState(window_s=60, max_bars=10)
    assert line.apply(_event("started", "q:a", 1000, priority=5, attempt=1, worker="w"))
    # its `dead` event was trimmed from the capped stream before the widget read it
    assert line.apply(_event("purged", "q:a", 1500, priority=5, attempt=1))
    (bar,) = line.attempts("q:a")
    assert (bar["outcome"], bar["end_ms"]) == ("dead", 1500) and "q:a" not in line.open
    assert line.slots.take("w", "q:b") == bar["row"]  # its slot is free again
    assert not line.apply(_event("purged", "q:a", 1600))  # nothing open: nothing changes
    assert not line.apply(_event("archived", "q:b", 1700))  # an unknown type is ignored


def test_sampling_above_the_rate_counts_every_move(tq: taskq.TaskQueue) -> None:
    @tq.task(queue=QUEUE)
    def noop() -> None:
        return None

    flow = StateFlow(tq, queues=[QUEUE], max_tokens_s=20)
    try:
        tq.enqueue_many([{"name": noop.name, "queue": QUEUE} for _ in range(300)])
        flow.refresh()
        assert flow.moves_seen == 300 and flow.edges["new>queued"] == 300
        assert sum(flow.occupancy[q] for q in LANES) == 300  # the counts hold every task
        assert flow.sampling and 1 <= flow.moves_shown <= 21 and len(flow.batch["moves"]) == flow.moves_shown
        assert flow.rate >= 300
    finally:
        flow.close()


def test_threads_follow_live_and_stop(tq: taskq.TaskQueue, workers: list[taskq.BackgroundWorker]) -> None:
    @tq.task(queue=QUEUE)
    def noop() -> None:
        return None

    flow = StateFlow(tq, queues=[QUEUE], interval_s=0.05).start()
    line = Timeline(tq, queues=[QUEUE], interval_s=0.05).start()
    try:
        assert flow.thread_alive and line.thread_alive and flow.polling
        workers.append(tq.start_worker(queues=[QUEUE], concurrency=4))
        ids = {noop.enqueue().id for _ in range(20)}
        wait_until(lambda: flow.occupancy["succeeded"] == 20, timeout_s=30, what="20 done, seen by the thread")
        # Every task's bar ends succeeded. Not "exactly 20 attempts": a task handed off to a worker
        # that filled up meanwhile is released and started again (taskq.handoff), a bar of its own.
        done = lambda: {b["id"] for b in line.bars if b["outcome"] == "succeeded"}  # noqa: E731
        wait_until(lambda: done() == ids, timeout_s=30, what="20 succeeded bars, drawn by the thread")
        assert line.attempts_seen >= 20
    finally:
        flow.close()
        line.close()
    assert not flow.thread_alive and not line.thread_alive


def test_killed_worker_bar_is_lost_and_the_task_reappears(tq: taskq.TaskQueue) -> None:
    pg = Playground(tq, queues=[QUEUE], lease_s=1.0, monitor=False)
    line = Timeline(tq, queues=[QUEUE])
    try:
        victim = pg.start_worker(kind="process", concurrency=1)
        handle = pg.submit(seconds=30)
        _settled(line, lambda: len(line.attempts(handle.id)) == 1, "the first attempt")
        pg.kill_worker(victim)
        pg.start_worker(kind="thread", concurrency=1)
        _settled(line, lambda: len(line.attempts(handle.id)) == 2, "the second attempt")
        first, second = line.attempts(handle.id)
        assert (
            first["outcome"] == "lost" and first["end_ms"] - first["start_ms"] >= 1000
        )  # held until the lease ran out
        assert second["row"].rpartition("#")[0] != first["row"].rpartition("#")[0]  # on another worker
        assert second["start_ms"] >= first["end_ms"]
    finally:
        line.close()
        pg.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda url: StateFlow(url, max_tokens_s=0), "max_tokens_s"),
        (lambda url: StateFlow(url, interval_s=-1), "interval_s"),
        (lambda url: Timeline(url, window_s=0), "window_s"),
        (lambda url: Timeline(url, max_bars=True), "max_bars"),
        (lambda url: Timeline(url, queues=[]), "queues"),
    ],
)
def test_bad_options_are_typed_errors(redis_url: str, make: object, message: str) -> None:
    with pytest.raises(taskq.InvalidOption, match=message):
        make(redis_url)  # type: ignore[operator]
