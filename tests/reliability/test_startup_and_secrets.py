"""``taskq worker`` waits for a Redis that is down at start; a URL's password never shows in
what taskq prints, logs, records or publishes (issue 17). Real processes, real redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from apps.procs import REPO, Workers, wait_until
from reliability.servers import redis_server

import taskq
from taskq.server import free_port

PASSWORD = "s3cret-Pw-7f1c"


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Workers]:
    started = Workers("unset", tmp_path)
    yield started
    started.cleanup()


def cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    env.pop("TASKQ_REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "taskq.cli", "--url", url, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_worker_waits_for_redis_down_at_start(procs: Workers, tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    procs.url = url
    proc = procs.start("--lease-s", "2", wait_ready=False)
    wait_until(lambda: "not reachable" in procs.log(proc), 30, "the worker to say it waits")
    assert proc.poll() is None, procs.log(proc)
    waiting = [line for line in procs.log(proc).splitlines() if "not reachable" in line]
    assert len(waiting) == 1 and "retrying" in waiting[0], procs.log(proc)  # said once, in one line
    with redis_server(tmp_path, "--requirepass", PASSWORD, port=port):
        wait_until(lambda: "serving" in procs.log(proc), 60, "the worker to start serving")
        with taskq.TaskQueue(url) as tq:
            handle = tq.enqueue("fault.work", [1], force=True)
            assert handle.result(timeout_s=30) == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert procs.wait_exit(proc) == 0
    assert PASSWORD not in procs.log(proc)


def test_worker_stops_while_waiting(procs: Workers) -> None:
    procs.url = f"redis://127.0.0.1:{free_port()}/0"
    proc = procs.start(wait_ready=False)
    wait_until(lambda: "not reachable" in procs.log(proc), 30, "the worker to say it waits")
    proc.send_signal(signal.SIGTERM)
    assert procs.wait_exit(proc) == 0


def test_wrong_password_is_one_line_not_a_wait(procs: Workers, tmp_path: Path) -> None:
    with redis_server(tmp_path, "--requirepass", PASSWORD) as port:
        procs.url = f"redis://:wrong-{PASSWORD}@127.0.0.1:{port}/0"
        proc = procs.start(wait_ready=False)
        assert procs.wait_exit(proc) == 1
    out = procs.log(proc)
    assert "error:" in out and "Traceback" not in out and PASSWORD not in out


def test_password_never_shown(procs: Workers, tmp_path: Path) -> None:
    """A run with a failing, a retried and a succeeding task, then every command that prints
    something: no output, log, error, event, record or registry entry holds the password."""
    with redis_server(tmp_path, "--requirepass", PASSWORD) as port:
        url = f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"
        procs.url = url
        proc = procs.start("--lease-s", "2", "--log-level", "debug")
        with taskq.TaskQueue(url) as tq:
            ok = tq.enqueue("fault.work", [1], force=True)
            bad = tq.enqueue("fault.work", [2, "not a number"], force=True, max_retries=0)
            ok.result(timeout_s=30)
            wait_until(lambda: tq.get(bad.id).status is taskq.TaskStatus.DEAD, 30, "the bad task to die")
            seen = [repr(tq.get(ok.id)), repr(tq.get(bad.id)), repr(tq.snapshot()), repr(tq.server_info)]
            seen += [repr(list(tq.events(since="0", follow=False))), repr(tq.registered_tasks()), repr(tq.workers())]
            seen.append(json.dumps(tq.registered_tasks(), default=repr))
            with redis.Redis.from_url(url) as raw:  # everything taskq wrote to Redis
                seen += [repr(raw.dump(key)) for key in raw.scan_iter(count=1000)]
        for args in (
            ["stats"], ["stats", "--json"], ["workers"], ["workers", "--json"], ["events"], ["events", "--json"],
            ["task", "show", bad.id], ["task", "show", bad.id, "--json"], ["tasks"], ["tasks", "--json"],
            ["metrics"], ["dlq", "list"], ["dlq", "list", "--json"],
        ):  # fmt: skip
            done = cli(url, *args)
            seen += [done.stdout, done.stderr]
        proc.send_signal(signal.SIGTERM)
        procs.wait_exit(proc)
        seen.append(procs.log(proc))
    down = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"  # errors that quote the URL
    for args in (["stats"], ["enqueue", "fault.work", "--args", "[1]"], ["task", "show", "default:1"]):
        done = cli(down, *args, check=False)
        assert done.returncode != 0
        seen += [done.stdout, done.stderr]
    with pytest.raises(taskq.ServerUnavailable) as raised:
        taskq.TaskQueue(down).stats()
    seen.append(str(raised.value))
    assert len("".join(seen)) > 1000  # the run produced output to look at
    leaks = [s for s in seen if PASSWORD in s]
    assert not leaks, leaks[0][:2000]
