"""What a worker runs and what a finished record keeps (issue 17): only registered functions
ever run, whatever name a payload carries; an attempt that succeeds after failed ones leaves
no earlier error on the record."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

import taskq
from taskq.backoff import Backoff
from taskq.worker import BackgroundWorker


def start(tq: taskq.TaskQueue, workers: list[BackgroundWorker], **settings: object) -> BackgroundWorker:
    w = tq.start_worker(idle_poll_s=0.1, **settings)
    workers.append(w)
    return w


def test_success_after_failures_clears_the_old_error(
    tq: taskq.TaskQueue, workers: list[BackgroundWorker], rc: redis.Redis
) -> None:
    calls: list[int] = []

    @tq.task(max_retries=3, backoff=Backoff(base_s=0.01, cap_s=0.02, jitter=0.0, min_s=0.0))
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError(f"attempt {len(calls)} fails")
        return "ok"

    handle = flaky.enqueue()
    start(tq, workers)
    assert handle.result(timeout_s=20) == "ok"
    task = tq.get(handle.id)
    assert task.status is taskq.TaskStatus.SUCCEEDED and task.attempts == 3
    assert (task.error_type, task.error, task.traceback) == (None, None, None)
    record = taskq.QueueKeys(tq.prefix, task.queue).task(handle.id)
    assert not {"error_type", "error", "traceback"} & set(rc.hkeys(record))


def test_a_failure_keeps_its_error(tq: taskq.TaskQueue, workers: list[BackgroundWorker]) -> None:
    """The other side: what clears the error on success must not clear it on death."""

    @tq.task(max_retries=0)
    def broken() -> None:
        raise KeyError("gone")

    handle = broken.enqueue()
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed):
        handle.result(timeout_s=20)
    task = tq.get(handle.id)
    assert task.error_type == "KeyError" and task.traceback and "gone" in task.traceback


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("os.system", ["touch {marker}"]),
        ("builtins.exec", ["open({marker!r}, 'w').close()"]),
        ("pathlib.Path.touch", ["{marker}"]),
        ("subprocess.run", [["touch", "{marker}"]]),
        ("tests.reliability.test_attempts.touch_marker", ["{marker}"]),  # importable, not registered
    ],
)
def test_only_registered_functions_run(
    tq: taskq.TaskQueue, workers: list[BackgroundWorker], tmp_path: Path, name: str, args: list[object]
) -> None:
    marker = tmp_path / "ran"

    def fill(value: object) -> object:
        if isinstance(value, list):
            return [fill(v) for v in value]
        return str(value).format(marker=str(marker))

    @tq.task()
    def registered() -> str:
        return "only this one may run"

    producer = taskq.TaskQueue(tq.url)
    handle = producer.enqueue(name, fill(args), force=True, max_retries=0)  # type: ignore[arg-type]
    start(tq, workers)
    with pytest.raises(taskq.TaskFailed) as failed:
        tq.handle(handle.id).result(timeout_s=20)
    assert failed.value.error_type == "UnknownTaskName"
    assert not marker.exists()
    assert registered.enqueue().result(timeout_s=20) == "only this one may run"
    producer.close()


def touch_marker(path: str) -> None:
    Path(path).touch()
