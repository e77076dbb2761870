"""The notebook widgets (taskq_widgets) against a real Redis: the monitor's figures follow
the tasks, its thread polls on its own and stops cleanly, the Playground's demo tasks fail
and retry as asked and its workers can be started, stopped and killed, and the static
fallback carries the numbers."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import taskq_widgets
from apps.procs import alive
from helpers import wait_until
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution
from taskq_widgets import Playground, QueueMonitor, render_html, render_text
from taskq_widgets.figures import add_point

import taskq
from taskq.server import free_port

# -- QueueMonitor ---------------------------------------------------------------------


@pytest.fixture
def mon(tq: taskq.TaskQueue) -> Iterator[QueueMonitor]:
    monitor = QueueMonitor(tq, queues=["default"], interval_s=0.05)
    yield monitor
    monitor.close()


def test_monitor_counts_follow_tasks(tq: taskq.TaskQueue, mon: QueueMonitor) -> None:
    @tq.task
    def add(a: int, b: int) -> int:
        return a + b

    mon.refresh()
    assert (mon.pending, mon.succeeded, mon.updates) == (0, 0, 1)
    assert set(mon.depth_by_priority) == {str(p) for p in range(1, 11)}

    for i in range(3):
        add.enqueue(i, 1, priority=9)
    add.enqueue(0, 0, priority=2)
    add.enqueue(0, 0, delay_s=3600)
    mon.refresh()
    assert (mon.pending, mon.queued, mon.scheduled, mon.running) == (5, 4, 1, 0)
    assert mon.depth_by_priority["9"] == 3
    assert mon.depth_by_priority["2"] == 1
    assert sum(mon.depth_by_priority.values()) == 4
    assert mon.queue_names == ["default"]
    assert mon.snapshot is not None and mon.snapshot.queue("default").queued == 4

    worker = tq.start_worker(concurrency=2)
    try:
        wait_until(lambda: tq.stats().counters.get("succeeded") == 4, what="4 tasks done")
        mon.refresh()
        assert (mon.pending, mon.queued, mon.scheduled, mon.succeeded, mon.failed) == (1, 0, 1, 4, 0)
        assert mon.depth_by_priority["9"] == 0
        assert [w["id"] for w in mon.workers] == [worker.worker.id]
        assert mon.workers[0]["health"] == "alive"
    finally:
        worker.stop()
    # the windowed figures cover whole seconds up to the current one
    wait_until(lambda: mon.refresh() and mon.latency_samples == 4, what="the window to cover the 4 tasks")
    assert mon.throughput == pytest.approx(4 / mon.window_s)
    assert mon.p50_ms is not None and mon.p99_ms is not None and mon.p99_ms >= mon.p50_ms > 0
    assert mon.history[-1]["pending"] == 1


def test_monitor_shows_running_task_with_lease_age(tq: taskq.TaskQueue, mon: QueueMonitor) -> None:
    release = threading.Event()

    @tq.task(name="hold")
    def hold() -> str:
        release.wait(30)
        return "ok"

    handle = hold.enqueue()
    worker = tq.start_worker(concurrency=1, lease_s=30, heartbeat_s=0.2)
    try:
        wait_until(lambda: mon.refresh() and mon.running == 1, what="the task to run")
        (row,) = mon.running_tasks
        assert (row["id"], row["name"], row["queue"], row["worker"]) == (handle.id, "hold", "default", worker.worker.id)
        assert row["attempt"] == 1
        assert row["age_ms"] >= 0
        assert 0 < row["lease_left_ms"] <= 30_000
        wait_until(lambda: mon.refresh() and mon.workers[0]["current"] == [handle.id], what="the heartbeat")
    finally:
        release.set()
        worker.stop()
    assert handle.result(timeout_s=10) == "ok"


def test_monitor_polls_in_its_thread_and_stop_joins_it(tq: taskq.TaskQueue, mon: QueueMonitor) -> None:
    mon.start()
    assert mon.polling and mon.thread_alive
    wait_until(lambda: mon.updates >= 2, what="two polls without refresh()")
    tq.enqueue("anything", priority=7, force=True)
    wait_until(lambda: mon.pending == 1, what="the poller to see the task")
    mon.stop()  # joins the thread: its last update is whole (it sets the traits one by one)
    assert mon.depth_by_priority["7"] == 1
    assert not mon.thread_alive and not mon.polling
    seen = mon.updates
    tq.enqueue("anything", force=True)
    mon.refresh()  # only the explicit read changes anything now
    assert (mon.updates, mon.pending) == (seen + 1, 2)


def test_monitor_close_ends_thread(tq: taskq.TaskQueue) -> None:
    mon = QueueMonitor(tq.url, interval_s=0.05).start()  # a URL: the monitor makes (and closes) its client
    wait_until(lambda: mon.updates >= 1, what="a poll")
    mon.close()
    assert not mon.thread_alive
    with pytest.raises(taskq.InvalidOption):
        mon.start()


def test_monitor_every_queue_when_none_given(tq: taskq.TaskQueue) -> None:
    tq.enqueue("x", queue="emails", priority=3, force=True)
    tq.enqueue("x", queue="reports", force=True)
    mon = QueueMonitor(tq)
    try:
        mon.refresh()
        assert mon.queue_names == ["emails", "reports"]
        assert (mon.pending, mon.depth_by_priority["3"], mon.depth_by_priority["5"]) == (2, 1, 1)
        assert [r["queue"] for r in mon.per_queue] == ["emails", "reports"]
    finally:
        mon.close()


def test_monitor_shows_error_when_redis_is_gone(tq: taskq.TaskQueue) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    mon = QueueMonitor(gone, interval_s=0.05)
    try:
        with pytest.raises(taskq.ServerUnavailable):
            mon.refresh()
        assert mon.error.startswith("ServerUnavailable")
        mon.start()
        wait_until(lambda: mon.thread_alive and mon.error != "", what="the error in the widget")
        assert mon.thread_alive  # the thread goes on
        assert "no reading yet" in repr(mon)
    finally:
        mon.close()
    assert not mon.thread_alive


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"queues": ["bad name"]}, taskq.InvalidQueueName),
        ({"queues": []}, taskq.InvalidOption),
        ({"interval_s": 0}, taskq.InvalidOption),
        ({"history": -1}, taskq.InvalidOption),
        ({"window_s": 901}, taskq.InvalidOption),
        ({"metric": "p99"}, taskq.InvalidOption),
    ],
)
def test_monitor_rejects_bad_options(tq: taskq.TaskQueue, kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        QueueMonitor(tq, **kwargs)  # type: ignore[arg-type]


def test_monitor_rejects_other_objects() -> None:
    with pytest.raises(taskq.InvalidOption):
        QueueMonitor(42)  # type: ignore[arg-type]


def test_history_keeps_one_point_per_second() -> None:
    h: list[dict[str, object]] = []
    h = add_point(h, {"t_ms": 1_000, "pending": 1}, 3)
    h = add_point(h, {"t_ms": 1_900, "pending": 2}, 3)  # same second: replaces
    assert h == [{"t_ms": 1_900, "pending": 2}]
    for t in (2_000, 3_000, 4_000):
        h = add_point(h, {"t_ms": t, "pending": t}, 3)
    assert [p["t_ms"] for p in h] == [2_000, 3_000, 4_000]


def test_mimebundle_has_widget_html_and_text(tq: taskq.TaskQueue, mon: QueueMonitor) -> None:
    for _ in range(2):
        tq.enqueue("x", priority=8, force=True)
    data, _metadata = mon._repr_mimebundle_()
    try:
        assert "application/vnd.jupyter.widget-view+json" in data
        assert mon.polling  # displaying starts live polling
        assert 'data-field="pending">2<' in data["text/html"]
        assert "pending=2" in data["text/plain"]
    finally:
        mon.stop()


# -- the front end: its own files, shipped as package data -----------------------------

FRONTEND = Path(taskq_widgets.__file__).parent / "frontend"


def test_monitor_sends_the_frontend_files(mon: QueueMonitor) -> None:
    state = mon.get_state()
    assert state["_esm"] == (FRONTEND / "monitor.js").read_text()
    assert state["_css"] == (FRONTEND / "monitor.css").read_text()
    assert "export default { render }" in state["_esm"]


def test_frontend_files_are_package_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """setuptools' build_py, configured from pyproject.toml, copies every front-end file."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools' notes on its own [tool.setuptools] support
        dist = apply_configuration(Distribution(), root / "pyproject.toml")
        dist.script_name = "setup.py"
        build = dist.get_command_obj("build_py")
        build.build_lib = str(tmp_path)  # type: ignore[attr-defined]
        dist.run_command("build_py")
    shipped = {p.name for p in (tmp_path / "taskq_widgets" / "frontend").iterdir()}
    assert shipped == {p.name for p in FRONTEND.iterdir()}
    widgets = ("monitor", "stateflow", "timeline", "leases", "keyinspector")
    assert {f"{name}.js" for name in widgets} <= shipped
    assert {"monitor.css", "flow.css", "inspect.css"} <= shipped


# -- the static fallback -----------------------------------------------------------------


def test_render_html_and_text(tq: taskq.TaskQueue) -> None:
    for priority in (10, 10, 1):
        tq.enqueue("noop", priority=priority, force=True)
    tq.enqueue("noop", queue="other", force=True)
    html = render_html(tq.snapshot())
    assert 'class="taskq-monitor-static"' in html
    assert 'data-field="pending">4<' in html
    assert 'data-field="succeeded">0<' in html
    assert 'data-field="p99_ms">\u2013<' in html  # no task finished: no percentile
    assert "<td" in html and "queued by priority" in html
    text = render_text(tq.snapshot(["default"]))
    assert "pending=3" in text and "p10:2 p1:1" in text


# -- Playground and the demo app ----------------------------------------------------------


@pytest.fixture
def pg(tq: taskq.TaskQueue) -> Iterator[Playground]:
    playground = Playground(tq, queues=["default"], lease_s=1.0, grace_s=0.5, interval_s=0.05, monitor=False)
    yield playground
    playground.close()


def _counters(tq: taskq.TaskQueue) -> dict[str, int]:
    return dict(tq.snapshot(["default"]).queue("default").counters)


def test_playground_fail_times_retries_then_succeeds(tq: taskq.TaskQueue, pg: Playground) -> None:
    pg.start_worker(kind="thread", concurrency=1)
    handle = pg.submit(name="demo.quick", priority=8, fail_times=2)
    assert handle.result(timeout_s=30) == 3  # the attempt that succeeded
    counters = _counters(tq)
    assert (counters["failed"], counters["retried"], counters["succeeded"], counters["dead"]) == (2, 2, 1, 0)
    wait_until(lambda: bool(pg.read_events()) or pg.counts().get("succeeded") == 1, what="the events")
    mine = [ev for ev in pg.events if ev.task_id == handle.id]
    assert [ev.attempt for ev in mine if ev.type == "retried"] == [1, 2]
    assert [ev.type for ev in mine].count("succeeded") == 1
    assert "retried" in pg._log.value and handle.id in pg._log.value


def test_playground_shows_thread_worker_log(tq: taskq.TaskQueue, pg: Playground) -> None:
    """A thread worker's log lines go to the Playground's log view (not bare to the kernel's stderr)."""
    pg.start_worker(kind="thread", concurrency=1)
    handle = pg.submit(name="demo.quick", priority=8, fail_times=1)
    assert handle.result(timeout_s=30) == 2
    wait_until(lambda: any("attempt 1 failed" in line for line in pg.worker_log), what="the worker's log line")
    assert "worker log" in pg._log.value and "attempt 1 failed" in pg._log.value
    pg.close()
    assert not any(isinstance(h, type(pg._log_handler)) for h in logging.getLogger("taskq").handlers)


def test_playground_more_failures_than_retries_is_dead(tq: taskq.TaskQueue, pg: Playground) -> None:
    pg.start_worker(kind="thread", concurrency=2)
    pg.submit(name="demo.fail")
    wait_until(lambda: _counters(tq)["dead"] == 1, timeout_s=30, what="the task to die")
    counters = _counters(tq)
    assert (counters["failed"], counters["retried"], counters["succeeded"]) == (3, 2, 0)
    (dead,) = tq.dead_letters().list()
    assert dead.name == "demo.fail" and "PlannedFailure" in (dead.error or "") + (dead.traceback or "")


def test_playground_log_polls_on_its_own(tq: taskq.TaskQueue, pg: Playground) -> None:
    pg.start()
    handle = pg.submit(name="demo.work", seconds=0.0, delay_s=3600, priority=3)
    wait_until(lambda: pg.counts().get("scheduled") == 1, what="the log to show the task")
    (ev,) = pg.events
    assert (ev.task_id, ev.priority, ev.queue) == (handle.id, 3, "default")
    pg.stop()
    assert not pg._log_poller.running


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"name": "demo.quick", "fail_times": -1}, taskq.InvalidOption),
        ({"name": "demo.quick", "fail_times": True}, taskq.InvalidOption),
        ({"name": "demo.fail", "fail_times": 1}, taskq.InvalidOption),
        ({"name": "demo.quick", "seconds": 1.0}, taskq.InvalidOption),
        ({"name": "demo.work", "seconds": -1.0}, taskq.InvalidOption),
        ({"name": "demo.work", "priority": 11}, taskq.InvalidPriority),
        ({"name": "demo.work", "delay_s": -1}, taskq.InvalidDelay),
        ({"name": "no.such.task"}, taskq.UnknownTaskName),
    ],
)
def test_playground_submit_rejects_bad_input(
    tq: taskq.TaskQueue, pg: Playground, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        pg.submit(**kwargs)  # type: ignore[arg-type]
    assert _counters(tq)["enqueued"] == 0


def test_playground_worker_controls_reject_bad_input(pg: Playground) -> None:
    with pytest.raises(taskq.InvalidOption):
        pg.start_worker(kind="fiber")
    with pytest.raises(taskq.InvalidOption):
        pg.start_worker(concurrency=0)
    with pytest.raises(taskq.InvalidOption):
        pg.stop_worker()  # none running
    pg.start_worker(kind="thread")
    with pytest.raises(taskq.InvalidOption, match="thread"):
        pg.kill_worker()  # only a process can be killed
    stopped = pg.stop_worker()
    assert stopped.outcome == "stopped" and not stopped.alive


def _worker_pid(tq: taskq.TaskQueue, worker_id: str) -> int | None:
    for w in tq.snapshot(["default"]).workers:
        if w.id == worker_id:
            return w.pid
    return None


def test_playground_kill_process_worker_and_recover(tq: taskq.TaskQueue, pg: Playground) -> None:
    victim = pg.start_worker(kind="process", concurrency=1)
    handle = pg.submit(name="demo.slow", seconds=60.0)

    def running_in_victim() -> bool:
        running = tq.snapshot(["default"]).queue("default").running_tasks
        return bool(running) and _worker_pid(tq, running[0].worker) == victim.pid

    wait_until(running_in_victim, timeout_s=60, what=f"the task to run in the worker process\n{victim.output()}")
    pg.kill_worker()
    assert victim.outcome == "killed" and not victim.alive
    assert victim.process is not None and victim.process.returncode == -9
    assert tq.get(handle.id).status == taskq.TaskStatus.RUNNING  # still leased by the dead worker
    rescuer = pg.start_worker(kind="thread", concurrency=1)
    # the rescuer's reaper requeues the expired lease and runs the task again
    wait_until(lambda: _counters(tq)["requeued"] == 1, timeout_s=30, what="the lease to expire")
    wait_until(lambda: tq.get(handle.id).attempts == 2, timeout_s=30, what="the second attempt")
    assert tq.cancel(handle.id) == "cancelling"  # demo.slow returns once it sees the abort flag
    wait_until(lambda: tq.get(handle.id).status == taskq.TaskStatus.CANCELLED, timeout_s=30, what="cancel")
    pg.stop_worker(rescuer)
    pg.read_events()
    assert pg.counts().get("requeued") == 1


def test_playground_stop_process_worker(pg: Playground) -> None:
    w = pg.start_worker(kind="process", concurrency=1)
    handle = pg.submit(name="demo.quick")
    assert handle.result(timeout_s=60) == 1
    pg.stop_worker(w)
    assert w.outcome == "stopped" and w.process is not None and w.process.returncode == 0


def test_playground_close_ends_workers(tq: taskq.TaskQueue) -> None:
    pg = Playground(tq, monitor=True, interval_s=0.05)
    workers = [pg.start_worker(kind="process"), pg.start_worker(kind="thread")]
    data, _metadata = pg._repr_mimebundle_()
    assert pg.monitor is not None and pg.monitor.polling and pg._log_poller.running
    assert "application/vnd.jupyter.widget-view+json" in data
    assert 'data-field="pending">' in data["text/html"] and "Playground" in data["text/plain"]
    pg.close()
    assert not any(w.alive for w in workers)
    assert not pg.monitor.thread_alive and not pg._log_poller.running


def test_demo_app_is_lazy_and_loadable(tq: taskq.TaskQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskq_widgets import demo

    from taskq.worker import load_app

    monkeypatch.setattr(demo, "_app", None)
    monkeypatch.setenv("TASKQ_REDIS_URL", tq.url)
    monkeypatch.setenv("TASKQ_PREFIX", "lesson")
    app = load_app("taskq_widgets.demo:tq")
    try:
        assert app is demo.tq
        assert (app.url, app.prefix) == (tq.url, "lesson")
        assert sorted(app.registry) == sorted(demo.DEMO_TASKS)
    finally:
        app.close()
    with pytest.raises(AttributeError):
        _ = demo.nothing_here


def test_playground_buttons(tq: taskq.TaskQueue, pg: Playground) -> None:
    pg.name_input.value = "demo.work"
    pg.priority_input.value = 9
    pg.delay_input.value = 3600.0
    pg.fail_input.value = 1
    pg.count_input.value = 3
    pg.submit_button.click()
    tasks = [tq.get(ev.task_id) for ev in pg.read_events() if ev.type == "scheduled"]
    assert len(tasks) == 3
    assert {(t.name, t.priority, t.kwargs["fail_times"], t.kwargs["seconds"]) for t in tasks} == {
        ("demo.work", 9, 1, 0.5)
    }
    pg.kill_button.click()  # no process worker: the error goes to the status line
    assert "InvalidOption" in pg._status.value
    pg.kind_input.value = "thread"
    pg.concurrency_input.value = 3
    pg.start_button.click()
    (worker,) = pg.workers
    assert worker.alive and worker.concurrency == 3 and worker.background is not None
    pg.stop_button.click()
    assert not worker.alive and worker.outcome == "stopped"


def test_monitor_on_every_backend(any_url: str) -> None:
    """The embedded fallback (fakeredis) serves the monitor too: notebooks run anywhere."""
    with taskq.TaskQueue(any_url) as client:
        client.enqueue("x", priority=4, force=True)
        mon = QueueMonitor(client, queues="default")
        try:
            mon.refresh()
            assert (mon.pending, mon.depth_by_priority["4"], mon.error) == (1, 1, "")
        finally:
            mon.close()


EXIT_SCRIPT = """
import sys, taskq
from taskq_widgets import Playground
tq = taskq.TaskQueue(sys.argv[1])
pg = Playground(tq, interval_s=0.05).start()
worker = pg.start_worker(kind="process")
pg.submit(name="demo.quick").result(timeout_s=60)
assert pg.monitor is not None
pg.monitor.refresh()
print(worker.pid, pg.monitor.updates, flush=True)
# no close(), no stop(): the interpreter exits with the pollers and the worker running
"""


def test_interpreter_exit_ends_pollers_and_worker_processes(redis_url: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, redis_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception" not in done.stderr, done.stderr
    pid, updates = (int(x) for x in done.stdout.split())
    assert updates >= 1
    assert not alive(pid)
    with taskq.TaskQueue(redis_url) as client:  # it was stopped, not killed: it deregistered
        assert [w.pid for w in client.snapshot().workers] == []
