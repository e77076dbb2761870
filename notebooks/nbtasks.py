"""Tasks and small helpers shared by the teaching notebooks.

Worker *processes* started by a notebook import this module (``taskq worker nbtasks:tq``), so the
tasks they run live here rather than in a notebook cell. The helpers only start, stop and wait for
things; every lesson's facts are read from taskq itself in the notebooks.

Run as a script, this module is the "naive" worker of notebook 3: a BZPOPMIN loop that loses a
task when it dies between taking it and recording its result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import redis

import taskq
from taskq import GlobalKeys, die_with_parent_hook

NOTEBOOKS_DIR = Path(__file__).resolve().parent

#: The app that worker processes serve. ``TaskQueue()`` finds the server the usual way
#: (``TASKQ_REDIS_URL`` first); workers started by :class:`WorkerProcess` are told the URL of
#: the notebook's own TaskQueue, so both sides always use one server.
tq = taskq.TaskQueue()


def show_worker_log() -> None:
    """Print the log of the workers that run in this kernel (``tq.start_worker()``) as part of
    the cell's output, one labelled line each (``worker log | WARNING | ...``), instead of
    Python's bare fallback lines on stderr. Calling it again changes nothing."""
    logger = logging.getLogger("taskq")
    if not any(getattr(h, "nbtasks", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("worker log | %(levelname)s | %(message)s"))
        handler.nbtasks = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


# ---------------------------------------------------------------------------
# Tasks


def _note_run(key: str, value: str) -> None:
    """Append ``value`` to the list ``key``: a trace of every execution, even killed ones."""
    tq.redis.rpush(key, value)


@tq.task
def hold(n: int, seconds: float) -> int:
    """Sleep ``seconds`` (a stand-in for real work) and return ``n``; every run is noted in
    ``nb:runs:<queue>`` as ``"<n>:<pid>:<attempt>"`` before the work starts."""
    ctx = taskq.current_task()
    assert ctx is not None
    _note_run(f"nb:runs:{ctx.queue}", f"{n}:{os.getpid()}:{ctx.attempt}")
    time.sleep(seconds)
    return n


@tq.task
def pay(order_id: str, amount: int, seconds: float = 0.0) -> str:
    """Charge ``amount`` for ``order_id`` twice over, to compare two ways of doing it:

    * ``nb:ledger-naive:<queue>`` (a list) gets one entry per *execution*;
    * ``nb:ledger:<queue>`` (a hash) is written with HSETNX keyed by the order, so however often
      the task runs, the order is charged once: an idempotent side effect.

    Then it works on for ``seconds`` (sending the receipt, say): a crash there means the task
    runs again, after its side effect already happened.
    """
    ctx = taskq.current_task()
    assert ctx is not None
    tq.redis.rpush(f"nb:ledger-naive:{ctx.queue}", order_id)
    tq.redis.hsetnx(f"nb:ledger:{ctx.queue}", order_id, amount)
    time.sleep(seconds)
    return f"charged {order_id}"


@tq.task
async def service(service_ms: float) -> float:
    """Be busy for ``service_ms`` milliseconds without holding a thread (asyncio.sleep), and
    return how long that really took, in ms: the service time the queue actually saw."""
    started = time.perf_counter()
    await asyncio.sleep(service_ms / 1000)
    return (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------------------
# Helpers for notebooks


def wait_until(predicate: Callable[[], Any], timeout_s: float = 30.0, what: str = "a condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that. The bound is
    generous: it only stops a notebook from hanging, it never asserts a speed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s}s for {what}")
        time.sleep(0.02)


def reset_queues(app: taskq.TaskQueue, *queues: str) -> int:
    """Delete every key of ``queues`` (tasks, telemetry, settings) and the notebooks' own
    ``nb:*:<queue>`` keys, so a notebook starts from empty queues. Returns keys deleted."""
    keys = GlobalKeys(app.prefix)
    deleted = 0
    for queue in queues:
        patterns = [keys.queue_scan_pattern(queue), f"nb:*:{queue}"]
        for pattern in patterns:
            found = list(app.redis.scan_iter(match=pattern, count=1000))
            for start in range(0, len(found), 500):
                deleted += int(app.redis.delete(*found[start : start + 500]))
        app.redis.srem(keys.queues, queue)
    return deleted


class WorkerProcess:
    """A ``taskq worker nbtasks:tq`` process serving ``queue``, on the same server as ``app``.

    Its output goes to a log file (:meth:`log`). It gets SIGTERM if the kernel dies, so no
    worker outlives the notebook that started it.
    """

    def __init__(
        self,
        app: taskq.TaskQueue,
        queue: str,
        *,
        concurrency: int = 1,
        lease_s: float = 30.0,
        grace_s: float = 1.0,
        extra: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.queue = queue
        argv = [sys.executable, "-m", "taskq.cli", "--url", app.url, "--prefix", app.prefix, "worker", "nbtasks:tq"]
        argv += ["--queues", queue, "--concurrency", str(concurrency), "--lease-s", str(lease_s)]
        argv += ["--grace-s", str(grace_s), *extra]
        self.argv = argv
        self.worker_id: str | None = None
        """The id the worker registered under (set by :meth:`wait_ready`)."""
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(prefix=f"nb-worker-{queue}-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            cwd=NOTEBOOKS_DIR,
            env=_child_env(app.url),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent_hook(),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def registration(self) -> taskq.WorkerSnapshot | None:
        """This process's entry in the worker registry (``tq.workers()``), if it has one."""
        for worker in self.app.workers():
            if worker.pid == self.pid and worker.health is not taskq.WorkerHealth.GONE:
                return worker
        return None

    def wait_ready(self, timeout_s: float = 30.0) -> WorkerProcess:
        """Wait until the worker has registered itself (it is then claiming)."""

        def ready() -> bool:
            if not self.alive:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            return self.registration() is not None

        wait_until(ready, timeout_s, f"worker {self.pid} to register")
        registration = self.registration()
        self.worker_id = None if registration is None else registration.id
        return self

    def kill(self) -> None:
        """SIGKILL: the process dies at once, with no chance to hand anything back."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL if it has not exited within ``timeout_s``."""
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
        return self.proc.returncode

    def log(self) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")
        except (OSError, ValueError):
            return ""


def _child_env(url: str) -> dict[str, str]:
    """The environment for child processes: this one, pointed at ``url``, with the notebooks
    folder importable."""
    env = dict(os.environ)
    env["TASKQ_REDIS_URL"] = url
    paths = [str(NOTEBOOKS_DIR), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ---------------------------------------------------------------------------
# Notebook 3's naive worker: the design taskq does *not* use


def start_naive_worker(url: str, queue_key: str, done_key: str, work_s: float) -> subprocess.Popen[str]:
    """Start ``python nbtasks.py naive ...`` (see :func:`naive_worker`); it prints one line
    ``popped <id>`` per task it takes, on its stdout (a pipe)."""
    argv = [sys.executable, str(NOTEBOOKS_DIR / "nbtasks.py"), "naive", url, queue_key, done_key, str(work_s)]
    return subprocess.Popen(
        argv,
        cwd=NOTEBOOKS_DIR,
        env=_child_env(url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent_hook(),
    )


def naive_worker(url: str, queue_key: str, done_key: str, work_s: float) -> None:
    """Take tasks with BZPOPMIN, "work" for ``work_s`` seconds, then record the result in the
    hash ``done_key``. Between the pop and the record the task exists only in this
    process's memory: kill the process there and the task is gone."""
    r = redis.Redis.from_url(url)
    while True:
        popped = r.bzpopmin(queue_key, timeout=1)
        if popped is None:
            continue
        member = popped[1]
        task_id = member.decode() if isinstance(member, bytes) else str(member)
        print(f"popped {task_id}", flush=True)
        time.sleep(work_s)
        r.hset(done_key, task_id, "ok")
        print(f"done {task_id}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    naive = sub.add_parser("naive", help="run the naive BZPOPMIN worker of notebook 3")
    naive.add_argument("url")
    naive.add_argument("queue_key")
    naive.add_argument("done_key")
    naive.add_argument("work_s", type=float)
    args = parser.parse_args(argv)
    naive_worker(args.url, args.queue_key, args.done_key, args.work_s)


if __name__ == "__main__":
    main()
