"""The `taskq` command line against the real test server: most commands in-process with
typer's CliRunner; what a user sees (exit codes, one-line errors, 80 columns, plug-ins) through
the installed `taskq` script in a subprocess."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import redis
import typer
from helpers import kill, wait_until
from typer.testing import CliRunner, Result

import taskq
import taskq.cli
import taskq.cli.logs
import taskq.cli.plugins
import taskq.telemetry
from taskq.cli import app
from taskq.server import LOCAL_DEFAULT, free_port, ping

runner = CliRunner()


def run(url: str, *argv: str, input: str | None = None) -> Result:  # noqa: A002 - CliRunner's name
    return runner.invoke(app, ["--url", url, *argv], input=input)


def ok(url: str, *argv: str, input: str | None = None) -> Result:  # noqa: A002
    result = run(url, *argv, input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def make_dead(tq: taskq.TaskQueue, name: str, queue: str = "default", error_type: str = "ValueError") -> str:
    """Enqueue a task, claim it and fail it with no retries left: it lands in the DLQ."""
    task_id = tq.enqueue(name, [1], queue=queue, force=True).id
    dead = kill(tq, queue, error_type=error_type, error="it broke", traceback="Traceback: line 1")
    assert dead.id == task_id and tq.get(task_id).status is taskq.TaskStatus.DEAD
    return task_id


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------
# help and global options


def _params_without_help(command: Any, path: str) -> Iterator[str]:
    if not (command.help or "").strip():
        yield path
    for param in command.params:
        if not (getattr(param, "help", None) or "").strip():
            yield f"{path} {param.name}"
    for name, sub in getattr(command, "commands", {}).items():
        yield from _params_without_help(sub, f"{path} {name}")


def test_every_command_and_option_has_help() -> None:
    assert list(_params_without_help(typer.main.get_command(app), "taskq")) == []


def test_top_level_help_explains_and_shows_an_example() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("task queue on Redis", "taskq enqueue send_email", "taskq stats --watch", "dlq", "server", "task"):
        assert word in result.stdout


def test_subcommand_help_describes_options() -> None:
    result = runner.invoke(app, ["dlq", "purge", "--help"])
    assert result.exit_code == 0
    assert "--error-type" in result.stdout and "--yes" in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"taskq {taskq.__version__}"


def test_url_must_be_a_redis_url() -> None:
    result = runner.invoke(app, ["--url", "localhost:6379", "stats"])
    assert result.exit_code == 2 and "redis://" in result.output


def test_unreachable_server_is_one_line_error() -> None:
    result = run(f"redis://127.0.0.1:{free_port()}/0", "stats")
    assert_one_line_error(result, "cannot reach Redis")


def test_prefix_keeps_apps_apart(redis_url: str) -> None:
    ok(redis_url, "--prefix", "other", "enqueue", "a", "--force", "--queue", "elsewhere")
    assert json.loads(ok(redis_url, "stats", "--json").stdout)["queues"] == []
    (counts,) = json.loads(ok(redis_url, "--prefix", "other", "stats", "--json").stdout)["queues"]
    assert counts["queue"] == "elsewhere" and counts["queued"] == 1


# ---------------------------------------------------------------------------
# enqueue


def test_enqueue_prints_the_id_and_stores_the_task(redis_url: str, tq: taskq.TaskQueue) -> None:
    result = ok(
        redis_url,
        "enqueue", "send_email", "--force",
        "--args", '["a@b.c", 2]',
        "--kwargs", '{"subject": "hi"}',
        "--queue", "emails",
        "--priority", "9",
        "--max-retries", "1",
    )  # fmt: skip
    task = tq.get(result.stdout.strip())
    assert (task.name, task.queue, task.priority, task.max_retries) == ("send_email", "emails", 9, 1)
    assert task.args == ["a@b.c", 2] and task.kwargs == {"subject": "hi"}
    assert task.status is taskq.TaskStatus.QUEUED


def test_enqueue_json_and_idempotency_key(redis_url: str) -> None:
    first = json.loads(ok(redis_url, "enqueue", "job", "--force", "--idempotency-key", "k1", "--json").stdout)
    again = json.loads(ok(redis_url, "enqueue", "job", "--force", "--idempotency-key", "k1", "--json").stdout)
    assert first == again == {"id": first["id"], "name": "job", "queue": "default"}


def test_enqueue_with_delay_is_scheduled(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = ok(redis_url, "enqueue", "later", "--force", "--delay-s", "60").stdout.strip()
    assert tq.get(task_id).status is taskq.TaskStatus.SCHEDULED


@pytest.mark.parametrize("priority", ["0", "11"])
def test_enqueue_bad_priority_is_one_line_error(redis_url: str, priority: str) -> None:
    assert_one_line_error(
        run(redis_url, "enqueue", "job", "--force", "--priority", priority), "priority must be in 1..10"
    )


def test_enqueue_bad_queue_name_is_one_line_error(redis_url: str) -> None:
    assert_one_line_error(run(redis_url, "enqueue", "job", "--force", "--queue", "no spaces"), "invalid queue name")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--args", "[1,", "not valid JSON"),
        ("--args", '{"a": 1}', "expected a JSON list"),
        ("--kwargs", "[1]", "expected a JSON object"),
    ],
)
def test_enqueue_bad_json_exits_2(redis_url: str, tq: taskq.TaskQueue, option: str, value: str, message: str) -> None:
    result = run(redis_url, "enqueue", "job", "--force", option, value)
    assert result.exit_code == 2
    flat = " ".join(result.stderr.replace("│", " ").split())
    assert option in flat and message in flat
    assert tq.all_stats() == []  # nothing was written


# ---------------------------------------------------------------------------
# stats


def test_stats_table_shows_every_queue(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("a", queue="alpha", force=True)
    tq.enqueue("b", queue="beta", delay_s=60, force=True)
    out = ok(redis_url, "stats").stdout
    assert "queue alpha" in out and "queue beta" in out
    for label in ("queued", "scheduled", "running", "dead", "enqueued", "succeeded", "redriven"):
        assert label in out


def test_stats_json_of_chosen_queues(redis_url: str, tq: taskq.TaskQueue) -> None:
    make_dead(tq, "c", queue="alpha")  # first: make_dead claims the queue's next task
    tq.enqueue("a", queue="alpha", force=True)
    tq.enqueue("a", queue="alpha", delay_s=60, force=True)
    tq.enqueue("b", queue="beta", force=True)
    (alpha,) = json.loads(ok(redis_url, "stats", "-q", "alpha", "--json").stdout)["queues"]
    assert {k: alpha[k] for k in ("queue", "queued", "scheduled", "running", "dead", "pending")} == {
        "queue": "alpha",
        "queued": 1,
        "scheduled": 1,
        "running": 0,
        "dead": 1,
        "pending": 2,
    }
    assert alpha["counters"]["enqueued"] == 3 and alpha["counters"]["started"] == 1
    assert alpha["counters"]["dead"] == 1 and alpha["counters"]["redriven"] == 0


def test_stats_with_no_queues(redis_url: str) -> None:
    assert "no queues yet" in ok(redis_url, "stats").stdout
    assert json.loads(ok(redis_url, "stats", "--json").stdout)["queues"] == []


def test_stats_bad_queue_name(redis_url: str) -> None:
    assert_one_line_error(run(redis_url, "stats", "-q", "bad{name}"), "invalid queue name")


def test_stats_watch_json_prints_one_line_per_update(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("a", force=True)
    result = ok(redis_url, "stats", "--watch", "--count", "3", "--interval-s", "0.01", "--json")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["queues"][0]["queued"] == 1 for line in lines)


def test_stats_watch_table_stops_after_count(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("a", force=True)
    started = time.monotonic()
    result = ok(redis_url, "stats", "--watch", "-n", "2", "--interval-s", "0.05")
    assert "queue default" in result.stdout
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------
# task show / cancel


def test_task_show(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = tq.enqueue("resize", [640], {"fmt": "png"}, queue="images", priority=8, force=True).id
    out = ok(redis_url, "task", "show", task_id).stdout
    for text in (task_id, "resize", "images", "queued", "640", '"fmt": "png"'):
        assert text in out


def test_task_show_json(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = tq.enqueue("resize", [640], priority=8, force=True).id
    record = json.loads(ok(redis_url, "task", "show", task_id, "--json").stdout)
    assert record["id"] == task_id and record["status"] == "queued" and record["priority"] == 8
    assert record["args"] == [640] and record["error"] is None


def test_task_show_dead_task_has_error_and_traceback(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = make_dead(tq, "flaky")
    out = ok(redis_url, "task", "show", task_id).stdout
    assert "dead" in out and "ValueError: it broke" in out and "Traceback: line 1" in out
    record = json.loads(ok(redis_url, "task", "show", task_id, "--json").stdout)
    assert (record["error_type"], record["error"], record["traceback"]) == (
        "ValueError",
        "it broke",
        "Traceback: line 1",
    )


def test_task_show_unknown_id(redis_url: str) -> None:
    assert_one_line_error(
        run(redis_url, "task", "show", "default:0123456789abcdef"), "no task default:0123456789abcdef"
    )
    assert_one_line_error(run(redis_url, "task", "show", "not-an-id"), "not a taskq task id")


def test_task_cancel(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = tq.enqueue("job", force=True).id
    assert ok(redis_url, "task", "cancel", task_id).stdout.strip() == f"cancelled {task_id}"
    assert tq.get(task_id).status is taskq.TaskStatus.CANCELLED
    assert_one_line_error(run(redis_url, "task", "cancel", task_id), "already cancelled")


def test_task_cancel_running_sets_the_flag(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = tq.enqueue("job", force=True).id
    tq._exec.run(tq.ops.claim("default", 1, 30_000, "w"))
    assert json.loads(ok(redis_url, "task", "cancel", task_id, "--json").stdout) == {
        "id": task_id,
        "outcome": "cancelling",
    }
    assert tq.get(task_id).cancel_requested


def test_task_cancel_unknown_id(redis_url: str) -> None:
    assert_one_line_error(run(redis_url, "task", "cancel", "default:0123456789abcdef"), "no task")


# ---------------------------------------------------------------------------
# dlq


def test_dlq_list(redis_url: str, tq: taskq.TaskQueue) -> None:
    assert "no dead tasks in queue 'default'" in ok(redis_url, "dlq", "list").stdout
    ids = [make_dead(tq, "flaky"), make_dead(tq, "other", error_type="KeyError")]
    out = ok(redis_url, "dlq", "list").stdout
    assert "flaky" in out and "KeyError" in out
    listed = json.loads(ok(redis_url, "dlq", "list", "--json").stdout)
    assert [t["id"] for t in listed] == ids
    assert listed[0]["traceback"] == "Traceback: line 1"
    assert len(json.loads(ok(redis_url, "dlq", "list", "--json", "--limit", "1").stdout)) == 1


def test_dlq_list_other_queue(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = make_dead(tq, "flaky", queue="emails")
    assert json.loads(ok(redis_url, "dlq", "list", "--json").stdout) == []
    assert [t["id"] for t in json.loads(ok(redis_url, "dlq", "list", "-q", "emails", "--json").stdout)] == [task_id]


def test_dlq_requeue_by_ids(redis_url: str, tq: taskq.TaskQueue) -> None:
    a, b = make_dead(tq, "flaky"), make_dead(tq, "flaky", queue="emails")
    keep = make_dead(tq, "flaky")
    assert json.loads(ok(redis_url, "dlq", "requeue", a, b, "--json").stdout) == {
        "requeued": 2,
        "by_queue": {"default": 1, "emails": 1},
    }
    assert [tq.get(t).status for t in (a, b, keep)] == [
        taskq.TaskStatus.QUEUED,
        taskq.TaskStatus.QUEUED,
        taskq.TaskStatus.DEAD,
    ]


def test_dlq_requeue_by_name_and_error_type(redis_url: str, tq: taskq.TaskQueue) -> None:
    flaky = make_dead(tq, "flaky")
    other = make_dead(tq, "other")
    key_error = make_dead(tq, "other", error_type="KeyError")
    assert (
        ok(redis_url, "dlq", "requeue", "--name", "flaky").stdout.strip() == "requeued 1 dead task of queue 'default'"
    )
    assert tq.get(flaky).status is taskq.TaskStatus.QUEUED
    ok(redis_url, "dlq", "requeue", "--error-type", "KeyError")
    assert tq.get(key_error).status is taskq.TaskStatus.QUEUED
    assert tq.get(other).status is taskq.TaskStatus.DEAD


def test_dlq_requeue_all(redis_url: str, tq: taskq.TaskQueue) -> None:
    for _ in range(3):
        make_dead(tq, "flaky", queue="emails")
    assert "requeued 3 dead tasks of queue 'emails'" in ok(redis_url, "dlq", "requeue", "--all", "-q", "emails").stdout
    counts = tq.stats("emails")
    assert (counts.dead, counts.queued, counts.counters["redriven"]) == (0, 3, 3)


def test_dlq_requeue_unknown_id_is_skipped_with_a_note(redis_url: str, tq: taskq.TaskQueue) -> None:
    task_id = make_dead(tq, "flaky")
    result = ok(redis_url, "dlq", "requeue", task_id, "default:0123456789abcdef")
    assert "requeued 1 dead task" in result.stdout and "1 of the given ids were not dead" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "requeue"],
        ["dlq", "requeue", "--all", "--name", "x"],
        ["dlq", "purge", "default:0123456789abcdef", "--error-type", "E"],
        ["dlq", "requeue", "emails:0123456789abcdef", "--queue", "default"],
    ],
)
def test_dlq_selectors_must_be_clear(redis_url: str, argv: list[str]) -> None:
    result = run(redis_url, *argv)
    assert result.exit_code == 2 and "Invalid value" in result.stderr


def test_dlq_purge_by_error_type(redis_url: str, tq: taskq.TaskQueue) -> None:
    gone = make_dead(tq, "flaky", error_type="KeyError")
    kept = make_dead(tq, "flaky")
    assert json.loads(ok(redis_url, "dlq", "purge", "--error-type", "KeyError", "--json").stdout)["purged"] == 1
    assert_one_line_error(run(redis_url, "task", "show", gone), "no task")
    assert tq.get(kept).status is taskq.TaskStatus.DEAD


def test_dlq_purge_all_asks_first(redis_url: str, tq: taskq.TaskQueue) -> None:
    make_dead(tq, "flaky")
    make_dead(tq, "flaky")
    refused = run(redis_url, "dlq", "purge", "--all", input="n\n")
    assert refused.exit_code == 1 and "Delete all 2 dead tasks" in refused.stdout
    assert tq.stats().dead == 2
    no_terminal = run(redis_url, "dlq", "purge", "--all")  # no input at all: refused too
    assert no_terminal.exit_code == 1 and tq.stats().dead == 2
    accepted = ok(redis_url, "dlq", "purge", "--all", input="y\n")
    assert "purged 2 dead tasks of queue 'default'" in accepted.stdout
    assert tq.stats().dead == 0


def test_dlq_purge_all_with_yes(redis_url: str, tq: taskq.TaskQueue) -> None:
    make_dead(tq, "flaky", queue="emails")
    assert "purged 1 dead task of" in ok(redis_url, "dlq", "purge", "--all", "--yes", "--queue", "emails").stdout
    assert tq.stats("emails").dead == 0


# ---------------------------------------------------------------------------
# server (a real subprocess)


def _read_url(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("redis://"):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"taskq server printed no URL (exit code {proc.poll()})")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_runs_until_signalled(sig: signal.Signals) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TASKQ_REDIS_URL", "REDIS_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskq.cli", "server", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = _read_url(proc)
        assert url == f"redis://127.0.0.1:{port}/0"
        assert proc.stdout is not None and proc.stdout.readline().strip() == f"export TASKQ_REDIS_URL={url}"
        with redis.Redis.from_url(url) as client:
            assert client.ping() is True
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert not ping("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_server_unknown_kind_exits_2() -> None:
    result = runner.invoke(app, ["server", "--kind", "memcached"])
    assert result.exit_code == 2


# ---------------------------------------------------------------------------
# telemetry: stats windows, events, workers, metrics, worker log format


def _next_second(url: str) -> None:
    with redis.Redis.from_url(url) as r:
        _, micros = r.time()
    time.sleep(1.02 - micros / 1e6)


def _beat(tq: taskq.TaskQueue, worker_id: str, age_ms: int = 0, interval_ms: int = 1000) -> None:
    info = {"id": worker_id, "host": "box", "pid": 42, "queues": ["default"], "concurrency": 4,
            "started_ms": int(time.time() * 1000) - 60_000, "heartbeat_ms": int(time.time() * 1000) - age_ms,
            "interval_ms": interval_ms, "processed": 9, "failed": 1, "current": ["default:abc"]}  # fmt: skip
    tq._exec.run(tq.ops.worker_heartbeat(info, 30))


def test_stats_shows_rates_and_latency_per_window(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue_many([{"name": "a", "priority": p, "force": True} for p in (9, 9, 2)])
    (task,) = tq._exec.run(tq.ops.claim("default", 1, 30_000, "w"))
    tq._exec.run(tq.ops.finish([tq.ops.complete_command(task, "null")]))
    _next_second(redis_url)
    out = runner.invoke(app, ["--url", redis_url, "stats"], env={"COLUMNS": "200"}).stdout
    for label in ("last 10 s", "last 1 min", "last 15 min", "succeeded/s", "run p99", "e2e p50", "priority 9"):
        assert label in out, label
    assert "workers: 0 alive" in out
    (record,) = json.loads(ok(redis_url, "stats", "--json").stdout)["queues"]
    assert record["by_priority"] == {"9": 1, "2": 1}
    window = {w["length_s"]: w for w in record["windows"]}[60]
    assert window["counts"] == {"enqueued": 3, "started": 1, "succeeded": 1}
    assert window["rates"]["enqueued"] == 0.05 and window["span_s"] == 60
    assert window["latency"]["run"]["samples"] == 1


def test_events_prints_recent_events(redis_url: str, tq: taskq.TaskQueue) -> None:
    ids = [tq.enqueue("a", priority=p, force=True).id for p in (1, 2, 3)]
    out = ok(redis_url, "events", "--last", "2").stdout.splitlines()
    assert len(out) == 2 and ids[1] in out[0] and ids[2] in out[1] and "enqueued" in out[0]
    lines = ok(redis_url, "events", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["task_id"] for e in events] == ids and events[0]["priority"] == 1
    assert all(e["type"] == "enqueued" and e["timestamp_ms"] > 0 for e in events)
    after = ok(redis_url, "events", "--json", "--since", events[0]["cursor"]).stdout.splitlines()
    assert [json.loads(line)["task_id"] for line in after] == ids[1:]


def test_events_follow_prints_new_events_as_they_happen(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("before", force=True)

    def produce() -> None:
        time.sleep(0.5)
        tq.enqueue("after", queue="other", force=True)
        tq.enqueue("after", force=True)

    thread = threading.Thread(target=produce)
    thread.start()
    result = ok(redis_url, "events", "--follow", "--queue", "default", "--count", "1", "--json")
    thread.join()
    (line,) = result.stdout.splitlines()
    event = json.loads(line)
    assert event["queue"] == "default" and event["type"] == "enqueued"
    assert tq.get(event["task_id"]).name == "after"


def test_workers_table_and_json(redis_url: str, tq: taskq.TaskQueue) -> None:
    assert "no workers registered" in ok(redis_url, "workers").stdout
    _beat(tq, "w-alive")
    _beat(tq, "w-stale", age_ms=5000)
    out = runner.invoke(app, ["--url", redis_url, "workers", "--running"], env={"COLUMNS": "200"}).stdout
    assert "w-alive" in out and "alive" in out and "w-stale" in out and "stale" in out
    assert "default:abc" in out
    workers = {w["id"]: w for w in json.loads(ok(redis_url, "workers", "--json").stdout)}
    assert workers["w-alive"]["health"] == "alive" and workers["w-stale"]["health"] == "stale"
    assert workers["w-alive"]["current"] == ["default:abc"] and workers["w-alive"]["processed"] == 9
    tq.redis.delete(tq.ops.keys.worker("w-stale"))
    workers = {w["id"]: w for w in json.loads(ok(redis_url, "workers", "--json").stdout)}
    assert workers["w-stale"]["health"] == "gone"


def test_metrics_prints_prometheus_text(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("a", priority=4, force=True)
    _beat(tq, "w1")
    out = ok(redis_url, "metrics").stdout
    assert "# TYPE taskq_tasks gauge" in out
    assert 'taskq_queued_tasks{queue="default",priority="4"} 1' in out
    assert 'taskq_workers{health="alive"} 1' in out
    assert out.endswith("\n")


def test_worker_log_format_option(monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["worker", "--help"])
    assert "--log-format" in result.stdout and "json" in result.stdout
    taskq.cli.logs.configure_logging("info", "json")
    root = logging.getLogger()
    try:
        assert isinstance(root.handlers[0].formatter, taskq.telemetry.JsonLogFormatter)
        assert root.level == logging.INFO
    finally:
        taskq.cli.logs.configure_logging("warning", "text")


# ---------------------------------------------------------------------------
# What a new user met in the first hour: the real `taskq` command in a subprocess, its
# exit code, and errors as exactly one line on stderr.

TASKQ = str(Path(sys.executable).parent / "taskq")

APP_SOURCE = """\
import taskq

tq = taskq.TaskQueue()


@tq.task(queue="emails", max_retries=1)
def send(to: str) -> None:
    pass
"""


def taskq_cli(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None, columns: int = 80
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``taskq`` script, as a user would, at ``columns`` wide."""
    environment = dict(os.environ if env is None else env, COLUMNS=str(columns))
    return subprocess.run([TASKQ, *argv], capture_output=True, text=True, env=environment, cwd=cwd, timeout=120)


def env_without_server() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("TASKQ_REDIS_URL", "REDIS_URL")}


def assert_one_line(done: subprocess.CompletedProcess[str], *fragments: str, code: int = 1) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["nosuchmodule:tq"], ["cannot import 'nosuchmodule'", "PYTHONPATH"]),
        (["myapp:nope"], ["no attribute 'nope'", "TaskQueue"]),
        (["nosuchmodule:tq", "--processes", "2"], ["cannot import 'nosuchmodule'"]),
    ],
)
def test_worker_with_a_wrong_app_path_is_one_line(
    redis_url: str, tmp_path: Path, argv: list[str], fragments: list[str]
) -> None:
    (tmp_path / "myapp.py").write_text(APP_SOURCE)
    done = taskq_cli("worker", *argv, env=dict(os.environ, TASKQ_REDIS_URL=redis_url), cwd=tmp_path)
    assert_one_line(done, *fragments)


def test_enqueue_by_name_takes_the_options_its_workers_registered(redis_url: str, tq: taskq.TaskQueue) -> None:
    @tq.task(queue="emails", max_retries=1, name="send")
    def send(to: str) -> None:
        pass

    worker = tq.start_worker(queues=["other"])  # publishes the registry; runs nothing of "emails"
    try:
        wait_until(lambda: "send" in tq.registered_tasks(), what="the worker's registry")
        done = taskq_cli("--url", redis_url, "enqueue", "send", "--args", '["a@b.c"]')
        assert done.returncode == 0, done.stderr
        task = tq.get(done.stdout.strip())
        assert (task.queue, task.max_retries) == ("emails", 1)
        listed = json.loads(taskq_cli("--url", redis_url, "tasks", "--json").stdout)
        assert [(t["name"], t["queue"], t["max_retries"]) for t in listed] == [("send", "emails", 1)]
        table = taskq_cli("--url", redis_url, "tasks").stdout
        assert "send" in table and "emails" in table and "ago" in table
    finally:
        worker.stop()


def test_enqueue_of_an_unknown_name_is_refused_unless_forced(redis_url: str, tq: taskq.TaskQueue) -> None:
    assert_one_line(taskq_cli("--url", redis_url, "enqueue", "no.such.task"), "no.such.task", "--force")
    assert tq.queues() == []  # nothing written
    forced = taskq_cli("--url", redis_url, "enqueue", "no.such.task", "--force")
    assert forced.returncode == 0 and tq.get(forced.stdout.strip()).name == "no.such.task"


def _isolated_from_localhost() -> list[str]:
    """A command prefix under which nothing answers on localhost:6379: none if nothing does
    here, else a network namespace of its own (``unshare -rn``), else skip."""
    if not ping(*LOCAL_DEFAULT):
        return []
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    pytest.skip("a Redis answers on localhost:6379 and no network namespace can hide it")


@pytest.mark.parametrize("argv", [["enqueue", "job", "--force"], ["stats"], ["dlq", "list"]])
def test_one_shot_commands_never_start_a_throwaway_server(argv: list[str]) -> None:
    prefix = _isolated_from_localhost()
    environment = dict(env_without_server(), COLUMNS="80")
    done = subprocess.run([*prefix, TASKQ, *argv], capture_output=True, text=True, env=environment, timeout=120)
    assert_one_line(done, "no Redis server found", "taskq server")


def test_stats_of_an_unknown_queue_is_an_error(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("job", force=True)
    assert_one_line(taskq_cli("--url", redis_url, "stats", "-q", "nosuchqueue"), "nosuchqueue", "default")
    assert_one_line(taskq_cli("--url", redis_url, "metrics", "-q", "nosuchqueue"), "nosuchqueue")


def test_stats_names_the_server_it_found(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("job", force=True)
    assert f"server: {redis_url} (--url)" in taskq_cli("--url", redis_url, "stats").stdout
    env = dict(os.environ, TASKQ_REDIS_URL=redis_url)
    record = json.loads(taskq_cli("stats", "--json", env=env).stdout)
    assert record["server"] == {"url": redis_url, "source": "env", "kind": None}
    assert [q["queue"] for q in record["queues"]] == ["default"]


def test_dlq_list_at_80_columns_is_one_line_per_task(redis_url: str, tq: taskq.TaskQueue) -> None:
    ids = [make_dead(tq, "a.rather.long.task.name"), make_dead(tq, "other", error_type="KeyError")]
    out = taskq_cli("--url", redis_url, "dlq", "list").stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    for task_id in ids:
        assert len([line for line in lines if task_id in line]) == 1  # the whole id, on one line


def test_server_on_a_busy_port_is_one_line(redis_server: Any) -> None:
    busy = redis_server.port
    assert_one_line(taskq_cli("server", "--port", str(busy)), f"port {busy} is busy", "try another")


@pytest.mark.parametrize("url", ["http://x", "not a url", "redis://localhost:99999/0", "redis://localhost:port/0"])
def test_malformed_url_is_one_line(url: str) -> None:
    assert_one_line(taskq_cli("--url", url, "stats"), "bad Redis URL", code=2)
    env = dict(env_without_server(), TASKQ_REDIS_URL=url)
    assert_one_line(taskq_cli("stats", env=env), "TASKQ_REDIS_URL", "bad Redis URL", code=2)
    assert_one_line(taskq_cli("worker", "myapp:tq", env=env), "TASKQ_REDIS_URL", code=2)


@pytest.mark.parametrize("argv", [[], ["stats"], ["events"], ["workers"], ["tasks"], ["enqueue"], ["worker"]])
def test_help_at_80_columns_keeps_sentences_whole(argv: list[str]) -> None:
    """A line of the description that stops well short of the width, with more text on the
    next line, is a sentence cut in two by a hard line break in the source."""
    done = taskq_cli(*argv, "--help")
    assert done.returncode == 0, done.stderr
    description = done.stdout.split("╭")[0].splitlines()
    for line, following in itertools.pairwise(description):
        if line.startswith("   ") or not following.strip():  # an example, or a paragraph's end
            continue
        assert len(line.rstrip()) > 60, f"sentence cut short: {line.strip()!r} / {following.strip()!r}"


def test_usage_errors_are_one_line() -> None:
    assert_one_line(taskq_cli("stats", "--bogus"), "--bogus", "taskq stats --help", code=2)
    assert_one_line(taskq_cli("enqueue"), "Missing argument", code=2)


# ---------------------------------------------------------------------------
# plug-ins (the taskq.cli entry-point group)


def _plugin_dist(root: Path, module_source: str) -> dict[str, str]:
    """A distribution on PYTHONPATH registering ``taskq broken`` from module ``brokenplugin``."""
    (root / "brokenplugin.py").write_text(module_source)
    info = root / "brokenplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[taskq.cli]\nbroken = brokenplugin:command\n")
    return dict(os.environ, PYTHONPATH=str(root))


def test_a_broken_plugin_costs_one_warning_line_and_the_rest_works(redis_url: str, tmp_path: Path) -> None:
    env = _plugin_dist(tmp_path, "raise ImportError('this plug-in is broken')\n")
    done = taskq_cli("--url", redis_url, "stats", "--json", env=env)
    assert done.returncode == 0
    (warning,) = done.stderr.splitlines()
    assert warning.startswith("warning: taskq plug-in 'broken'") and "this plug-in is broken" in warning
    assert json.loads(done.stdout)["queues"] == []


def test_a_plugin_adds_its_command(tmp_path: Path) -> None:
    source = "import typer\n\ncommand = typer.Typer()\n\n\n@command.command()\ndef hello() -> None:\n"
    source += '    """Say hello."""\n    print("hello from a plug-in")\n'
    env = _plugin_dist(tmp_path, source)
    done = taskq_cli("broken", env=env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "hello from a plug-in\n", "")
    assert "broken" in taskq_cli("--help", env=env).stdout


def test_bench_without_the_benchmark_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(taskq.cli.plugins, "entry_points", lambda group: [])  # as if taskq-bench were absent
    with pytest.raises(SystemExit) as exited:
        monkeypatch.setattr(sys, "argv", ["taskq", "bench", "--suite", "smoke"])
        taskq.cli.main()
    assert exited.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: `taskq bench` is not installed") and "pip install -e ./benchmarks" in line


def test_serve_without_the_api_extra_is_quiet_until_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seen in `make demo`'s venv (no taskq[api]): every `taskq` command warned that `serve`
    could not be loaded. A known plug-in whose dependencies are missing is listed quietly, and
    says how to install them when it is run."""
    missing = EntryPoint(name="serve", value="taskq_no_such_dependency_xyz:serve", group="taskq.cli")
    monkeypatch.setattr(taskq.cli.plugins, "entry_points", lambda group: [missing])
    for argv, code in ((["taskq", "--help"], 0), (["taskq", "serve", "app:tq"], 1)):
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exited:
            taskq.cli.main()
        assert exited.value.code == code
    out, err = capsys.readouterr()
    assert "serve" in out and "warning" not in out + err
    (line,) = err.splitlines()
    assert line.startswith("error: `taskq serve` is not installed") and "pip install 'taskq[api]'" in line


def test_every_command_refuses_an_unknown_queue_the_same_way(redis_url: str, tq: taskq.TaskQueue) -> None:
    tq.enqueue("job", force=True)
    for argv in (["stats"], ["metrics"], ["events"], ["dlq", "list"]):
        assert_one_line(taskq_cli("--url", redis_url, *argv, "--queue", "nosuchqueue"), "no queue named 'nosuchqueue'")


def test_events_follow_may_wait_for_a_queue_that_has_no_task_yet(redis_url: str, tq: taskq.TaskQueue) -> None:
    argv = [TASKQ, "--url", redis_url, "events", "--follow", "-q", "later", "--count", "1", "--json"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as follower:
        try:
            wait_until(lambda: follower.poll() is not None or _following(redis_url), what="the follower to start")
            task_id = tq.enqueue("job", queue="later", force=True).id
            out, err = follower.communicate(timeout=60)
        finally:
            follower.kill()
    assert follower.returncode == 0, err
    assert json.loads(out)["task_id"] == task_id


def _following(url: str) -> bool:
    """Whether a client is blocked reading (the follower waiting for events)."""
    with redis.Redis.from_url(url) as r:
        return int(r.info("clients").get("blocked_clients", 0)) > 0
