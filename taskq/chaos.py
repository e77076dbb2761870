"""``taskq chaos``: a fault-injection run anyone can make, on a Redis and workers of its own.

It starts a redis-server with AOF (``appendfsync always``) in a temporary directory, N real
``taskq worker`` processes serving :mod:`taskq.chaos_tasks`, and enqueues M tasks at a steady
rate while it injects faults on a schedule, one at a time, cycling through:

* ``worker-kill``: SIGKILL a worker, then start a new one;
* ``redis-restart``: SIGKILL redis-server (a hard crash: SHUTDOWN would save) and start it
  again on the same port and directory, so it reloads its AOF;
* ``connection-drop``: ``CLIENT KILL TYPE normal``, every client connection at once;
* ``pause``: SIGSTOP a worker for twice its lease, then SIGCONT (its tasks go back to the
  queue meanwhile, and its late completions must be refused).

Then it waits for the queue to drain and reports tasks submitted, completed, lost (submitted
and not succeeded: must be 0), duplicated (the body ran more than once, counted from the
tasks' own records), the longest recovery (from a fault to the next completion) and Redis
memory before and after. The seed picks the victims and is in the report.

EmbeddedServer is not used for the server: it runs without persistence and removes its
directory when it stops, and this run needs both to survive a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis

from taskq.client import TaskQueue
from taskq.errors import InvalidOption, ServerUnavailable
from taskq.server import die_with_parent_hook, find_binary, free_port, ping
from taskq.task import TaskStatus

QUEUE = "chaos"
TASK_NAME = "chaos_work"
RUNS_KEY = "taskq-chaos:runs"
"""The hash each attempt of a chaos task writes one field to: the JSON ``[task id, lease token]``."""
APP = "taskq.chaos_tasks:tq"
FAULT_KINDS = ("worker-kill", "redis-restart", "connection-drop", "pause")
_TRANSIENT = (ServerUnavailable, redis.RedisError, OSError)  # Redis down, restarting or loading


@dataclass(frozen=True)
class ChaosSettings:
    """What one chaos run does. ``faults`` are spread evenly over the workload
    (``tasks / rate`` seconds); ``seed=None`` picks one (recorded in the report)."""

    workers: int = 4
    tasks: int = 2000
    rate: float = 100.0
    faults: int = 8
    seed: int | None = None
    lease_s: float = 2.0
    task_s: float = 0.02
    concurrency: int = 4
    drain_timeout_s: float = 120.0

    def check(self) -> ChaosSettings:
        """These settings, or :class:`InvalidOption` naming the first bad one."""
        limits: list[tuple[str, float, float]] = [
            ("workers", 1, 64), ("tasks", 1, 1_000_000), ("rate", 0.1, 100_000), ("faults", 0, 10_000),
            ("lease_s", 0.5, 3600), ("task_s", 0, 60), ("concurrency", 1, 1000), ("drain_timeout_s", 1, 86_400),
        ]  # fmt: skip
        for name, low, high in limits:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise InvalidOption(f"chaos {name}={value!r}: expected a number in {low:g}..{high:g}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise InvalidOption(f"chaos seed={self.seed!r}: expected an integer")
        return self

    @property
    def workload_s(self) -> float:
        return self.tasks / self.rate


@dataclass
class Fault:
    """One injected fault: its kind, what it hit, when (seconds into the run) and how long
    until the next task completed after it (None: no completion came after it)."""

    kind: str
    target: str
    at_s: float
    at_ms: int = field(repr=False)
    recovery_s: float | None = None


@dataclass
class ChaosReport:
    """The outcome of a run. ``lost`` counts submitted tasks that did not succeed by the end of
    the drain (``dead`` and ``unfinished`` say why); ``runs`` counts attempts whose body ran."""

    seed: int
    workers: int
    submitted: int
    completed: int
    lost: int
    dead: int
    unfinished: int
    duplicated: int
    runs: int
    longest_recovery_s: float | None
    memory_before_bytes: int
    memory_after_bytes: int
    run_log_bytes: int
    """Of ``memory_after_bytes``, the run's own log of attempts (:data:`RUNS_KEY`); the rest of
    the growth is mostly the finished task records, kept for their result TTL."""
    elapsed_s: float
    worker_exits: int
    faults: list[Fault] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for fault in data["faults"]:
            del fault["at_ms"]
        return data


class AofServer:
    """redis-server (or valkey-server) with AOF on, on one port and directory for its whole
    life, so a hard kill and a restart reload what it had acknowledged. ``appendfsync`` is
    Redis's setting: ``always`` (fsync before each reply, the chaos run's), ``everysec``, ``no``."""

    def __init__(self, workdir: Path, appendfsync: str = "always") -> None:
        found = find_binary()
        if found is None:
            raise ServerUnavailable("taskq chaos needs a redis-server or valkey-server binary; none was found")
        self.kind, self.binary = found
        self.workdir = workdir
        self.appendfsync = appendfsync
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 30.0) -> None:
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "no",
            "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync, "--dir", str(self.workdir),
            "--daemonize", "no", "--loglevel", "warning", "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent_hook())
        deadline = time.monotonic() + timeout_s
        while not ping("127.0.0.1", self.port, 0.2):  # a server still loading its AOF answers -LOADING
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.workdir / "redis.log").read_text(errors="replace")[-1000:]
                raise ServerUnavailable(f"{self.kind} did not start on port {self.port}: {log.strip()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """A crash: SIGKILL, no SHUTDOWN (which would save and exit cleanly)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerSet:
    """The ``taskq worker`` processes of a run, started from the calling thread (their
    PR_SET_PDEATHSIG is tied to it), each logging to a file of its own."""

    def __init__(self, settings: ChaosSettings, url: str, workdir: Path) -> None:
        self.settings = settings
        self.url = url
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [
            sys.executable, "-m", "taskq.cli", "--url", self.url, "worker", APP,
            "--concurrency", str(self.settings.concurrency), "--lease-s", str(self.settings.lease_s),
            "--grace-s", "1", "--log-level", "warning",
        ]  # fmt: skip
        self.started += 1
        with (self.workdir / f"worker-{self.started}.log").open("wb") as log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent_hook()
            )

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.settings.workers)]

    def replace(self, index: int) -> None:
        """Start a new worker in slot ``index`` (its old process is dead or killed)."""
        self.procs[index] = self._spawn()

    def revive_exited(self) -> int:
        """Restart every worker that exited on its own; how many did."""
        exited = [i for i, proc in enumerate(self.procs) if proc.poll() is not None]
        for i in exited:
            self.replace(i)
        return len(exited)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGCONT)  # a paused worker cannot handle SIGTERM
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def retrying(action: Callable[[], Any], deadline_s: float, stop: threading.Event | None = None) -> Any:
    """``action()``, retried every 50 ms while Redis is unreachable, for up to ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return action()
        except _TRANSIENT:
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                raise
            time.sleep(0.05)


class Producer(threading.Thread):
    """Enqueues ``tasks`` chaos tasks at ``rate`` per second. Each has an idempotency key, so a
    retry after a reply lost to a fault returns the first task instead of adding one."""

    def __init__(self, tq: TaskQueue, settings: ChaosSettings, run_id: str) -> None:
        super().__init__(name="taskq-chaos-producer", daemon=True)
        self.tq = tq
        self.settings = settings
        self.run_id = run_id
        self.ids: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def _enqueue(self, n: int) -> str:
        key = f"chaos:{self.run_id}:{n}"
        handle = self.tq.enqueue(TASK_NAME, args=[n, self.settings.task_s], queue=QUEUE, idempotency_key=key)
        return str(handle.id)

    def run(self) -> None:
        interval_s = 1.0 / self.settings.rate
        next_at = time.monotonic()
        try:
            for n in range(self.settings.tasks):
                if self.stop.is_set():
                    return
                self.ids.append(retrying(partial(self._enqueue, n), 60.0, self.stop))
                next_at += interval_s
                time.sleep(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - handed to the run, which reports it
            self.error = exc


class ChaosRun:
    """One run: :meth:`execute` does it all and returns the :class:`ChaosReport`."""

    def __init__(self, settings: ChaosSettings, workdir: Path, log: Callable[[str], None] | None = None) -> None:
        self.settings = settings.check()
        self.seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**31)
        self.rng = random.Random(self.seed)
        self.workdir = workdir
        self.log = log or (lambda message: None)
        self.server = AofServer(workdir)
        self.workers = WorkerSet(settings, self.server.url, workdir)
        self.faults: list[Fault] = []
        self.started = time.monotonic()
        self.worker_exits = 0

    def _admin(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.server.port, socket_timeout=5, socket_connect_timeout=5)

    def _memory_bytes(self) -> int:
        with self._admin() as admin:
            info: Any = retrying(lambda: admin.info("memory"), 30.0)
            return int(info["used_memory"])

    def _run_log_bytes(self) -> int:
        with self._admin() as admin:
            return int(retrying(lambda: admin.memory_usage(RUNS_KEY, samples=0) or 0, 30.0))

    def _wait_for_workers(self, tq: TaskQueue) -> None:
        deadline = time.monotonic() + 60.0
        while len(retrying(tq.workers, 30.0)) < self.settings.workers:
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"the chaos workers did not start; see their logs in {self.workdir}")
            self.worker_exits += self.workers.revive_exited()
            time.sleep(0.1)

    def inject(self, kind: str) -> None:
        """Inject one fault of ``kind`` now, and wait until it is over (worker restarted,
        Redis answering again, worker resumed)."""
        index = self.rng.randrange(len(self.workers.procs))
        target = f"worker {index + 1}" if kind in ("worker-kill", "pause") else "redis"
        fault = Fault(kind, target, round(time.monotonic() - self.started, 3), int(time.time() * 1000))
        self.faults.append(fault)
        self.log(f"{fault.at_s:7.2f}s  {kind} ({target})")
        proc = self.workers.procs[index]
        if kind == "worker-kill":
            proc.kill()
            proc.wait()
            self.workers.replace(index)
        elif kind == "redis-restart":
            self.server.kill()
            time.sleep(0.5)
            self.server.start()
        elif kind == "connection-drop":
            with self._admin() as admin:
                retrying(lambda: admin.client_kill_filter(_type="normal"), 30.0)
        elif kind == "pause":
            proc.send_signal(signal.SIGSTOP)
            time.sleep(2 * self.settings.lease_s)
            proc.send_signal(signal.SIGCONT)
        else:
            raise InvalidOption(f"unknown fault kind {kind!r}: expected one of {', '.join(FAULT_KINDS)}")

    def _schedule(self) -> list[tuple[float, str]]:
        """(seconds into the workload, kind) of each fault: evenly spaced, kinds in turn from
        a seeded start, so every kind comes up once in any four in a row."""
        count = self.settings.faults
        first = self.rng.randrange(len(FAULT_KINDS))
        step_s = self.settings.workload_s / (count + 1)
        return [(step_s * (i + 1), FAULT_KINDS[(first + i) % len(FAULT_KINDS)]) for i in range(count)]

    def _drain(self, tq: TaskQueue, producer: Producer) -> None:
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while time.monotonic() < deadline:
            self.worker_exits += self.workers.revive_exited()
            if not producer.is_alive():
                counts = retrying(lambda: tq.stats(QUEUE), 30.0)
                if counts.pending == 0:
                    return
            time.sleep(0.2)
        self.log(f"the queue did not drain within {self.settings.drain_timeout_s:g}s")

    def _workload(self, tq: TaskQueue) -> Producer:
        producer = Producer(tq, self.settings, uuid.uuid4().hex[:12])
        begin = time.monotonic()
        producer.start()
        for at_s, kind in self._schedule():
            time.sleep(max(0.0, begin + at_s - time.monotonic()))
            self.worker_exits += self.workers.revive_exited()
            self.inject(kind)
        self._drain(tq, producer)
        producer.stop.set()
        producer.join(10)
        if producer.error is not None:
            raise producer.error
        return producer

    def execute(self) -> ChaosReport:
        self.server.start()
        try:
            self.workers.start()
            with TaskQueue(self.server.url, embedded=False) as tq:
                self._wait_for_workers(tq)
                memory_before = self._memory_bytes()
                self.log(f"seed {self.seed}: {self.settings.tasks} tasks at {self.settings.rate:g}/s on "
                         f"{self.settings.workers} workers, {self.settings.faults} faults")  # fmt: skip
                producer = self._workload(tq)
                return self.report(tq, producer.ids, memory_before)
        finally:
            self.workers.stop()
            self.server.stop()

    def report(self, tq: TaskQueue, ids: list[str], memory_before: int) -> ChaosReport:
        """The report on tasks ``ids``: their states now, the runs they recorded, and each
        fault's recovery (the first completion at or after it)."""
        finished: list[int] = []
        dead = unfinished = completed = 0
        for task_id in ids:
            task = retrying(partial(tq.get, task_id), 30.0)
            if task.status is TaskStatus.SUCCEEDED:
                completed += 1
            elif task.status is TaskStatus.DEAD:
                dead += 1
            else:
                unfinished += 1
            if task.status is TaskStatus.SUCCEEDED and task.finished_ms is not None:
                finished.append(task.finished_ms)
        with self._admin() as admin:
            fields: list[bytes] = retrying(lambda: admin.hkeys(RUNS_KEY), 30.0)
        runs_per_task: dict[str, int] = {}
        for name in fields:
            task_id = str(json.loads(name)[0])
            runs_per_task[task_id] = runs_per_task.get(task_id, 0) + 1
        finished.sort()
        for fault in self.faults:
            after = next((ms for ms in finished if ms >= fault.at_ms), None)
            fault.recovery_s = None if after is None else round((after - fault.at_ms) / 1000, 3)
        recoveries = [f.recovery_s for f in self.faults if f.recovery_s is not None]
        return ChaosReport(
            seed=self.seed,
            workers=self.settings.workers,
            submitted=len(ids),
            completed=completed,
            lost=len(ids) - completed,
            dead=dead,
            unfinished=unfinished,
            duplicated=sum(1 for count in runs_per_task.values() if count > 1),
            runs=len(fields),
            longest_recovery_s=max(recoveries, default=None),
            memory_before_bytes=memory_before,
            memory_after_bytes=self._memory_bytes(),
            run_log_bytes=self._run_log_bytes(),
            elapsed_s=round(time.monotonic() - self.started, 2),
            worker_exits=self.worker_exits,
            faults=self.faults,
        )


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="taskq-chaos-") as name:
        yield Path(name)


def run_chaos(
    settings: ChaosSettings, *, workdir: Path | None = None, log: Callable[[str], None] | None = None
) -> ChaosReport:
    """Make one chaos run (see the module docstring). ``workdir`` keeps the server's AOF and
    the workers' logs there (default: a temporary directory, removed after)."""
    with _workdir(workdir) as path:
        return ChaosRun(settings, path, log).execute()
