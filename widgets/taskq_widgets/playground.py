"""Playground: submit demo tasks, start, stop and kill workers, and watch the event log.

Everything it shows comes from the core telemetry: the embedded :class:`QueueMonitor`
reads ``TaskQueue.snapshot()``, the log reads ``TaskQueue.events()`` from a cursor. The
workers are real: an in-kernel :class:`taskq.BackgroundWorker` (kind "thread") or a
``taskq worker taskq_widgets.demo:tq`` subprocess (kind "process"), which
:meth:`Playground.kill_worker` ends with SIGKILL for the crash-recovery lesson.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

import ipywidgets  # type: ignore[import-untyped]

from taskq import (
    AsyncTaskQueue,
    BackgroundWorker,
    Event,
    InvalidOption,
    TaskHandle,
    TaskQueue,
    die_with_parent_hook,
)
from taskq_widgets.demo import DEMO_TASKS, register
from taskq_widgets.monitor import QueueMonitor, connect, queue_list
from taskq_widgets.polling import Poller, check_interval_s

WORKER_KINDS = ("thread", "process")
#: The app a process worker serves.
DEMO_APP = "taskq_widgets.demo:tq"
MAX_FAIL_TIMES = 100


@dataclass(eq=False)
class ManagedWorker:
    """A worker the Playground started: in this process (``background``) or a child
    process (``process``, its output in ``log_path``)."""

    kind: str
    concurrency: int
    background: BackgroundWorker | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: str | None = None
    outcome: str = field(default="running")
    """'running', 'stopped', 'killed' or 'exited <code>'."""

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else os.getpid()

    @property
    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.background is not None and self.background.alive

    @property
    def label(self) -> str:
        if self.background is not None:
            return f"thread worker {self.background.worker.id}"
        return f"process worker pid {self.pid}"

    def output(self) -> str:
        """What a process worker wrote to stdout/stderr so far ('' for a thread worker)."""
        if self.log_path is None:
            return ""
        with contextlib.suppress(OSError), open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()
        return ""


def _end_processes(workers: list[ManagedWorker], grace_s: float) -> None:
    """At exit (or when the Playground is collected): stop the worker processes still
    running (SIGTERM: they hand their tasks back and deregister), SIGKILL past the grace."""
    running = [w.process for w in workers if w.process is not None and w.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s + 5.0
    for process in running:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def format_event(ev: Event) -> str:
    """One log line: time, queue, type, task id, priority, attempt, worker."""
    stamp = time.strftime("%H:%M:%S", time.localtime(ev.timestamp_ms / 1000)) + f".{ev.timestamp_ms % 1000:03d}"
    parts = [stamp, ev.queue, f"{ev.type:<10}", ev.task_id]
    if ev.priority is not None:
        parts.append(f"p{ev.priority}")
    if ev.attempt is not None:
        parts.append(f"attempt {ev.attempt}")
    if ev.worker:
        parts.append(f"by {ev.worker}")
    return " ".join(parts)


class _KernelLogHandler(logging.Handler):
    """Takes the log records of the taskq workers running in this kernel (thread workers)
    into a Playground's log view, labelled, instead of Python's bare fallback lines on the
    kernel's stderr, which would land in whatever cell ran last."""

    def __init__(self, playground: Playground) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        self._playground = weakref.ref(playground)

    def emit(self, record: logging.LogRecord) -> None:
        playground = self._playground()
        if playground is not None:
            playground._add_worker_log(self.format(record))


class Playground(ipywidgets.VBox):  # type: ignore[misc]
    """Controls to submit demo tasks and run workers, a live monitor and an event log.

    >>> pg = Playground(tq, queues=["default"])        # doctest: +SKIP
    >>> pg                                             # displays, and starts the log and monitor
    >>> pg.start_worker(kind="process", concurrency=2) # doctest: +SKIP
    >>> pg.submit(name="demo.work", priority=9, fail_times=2)   # doctest: +SKIP
    >>> pg.kill_worker()                               # SIGKILL the newest process worker

    The demo tasks (:mod:`taskq_widgets.demo`) are registered on ``tq``. ``lease_s``: the
    lease of the workers started here (short, so a killed worker's task comes back soon);
    ``grace_s``: how long stopping a worker lets running tasks finish.
    """

    def __init__(
        self,
        tq: TaskQueue | AsyncTaskQueue | str,
        queues: str | Sequence[str] | None = None,
        *,
        lease_s: float = 5.0,
        grace_s: float = 2.0,
        interval_s: float = 0.25,
        monitor: bool = True,
        log_limit: int = 500,
        **kwargs: Any,
    ) -> None:
        client, owned = connect(tq)
        watched = queue_list(queues) or [client.default_queue]
        if not 0 < lease_s <= 3600 or not 0 <= grace_s <= 600:
            raise InvalidOption(f"lease_s must be in (0, 3600] and grace_s in [0, 600], got {lease_s}, {grace_s}")
        if isinstance(log_limit, bool) or not isinstance(log_limit, int) or log_limit < 1:
            raise InvalidOption(f"log_limit must be an integer >= 1, got {log_limit!r}")
        interval = check_interval_s(interval_s)
        register(client)
        self.tq = client
        self.queues = watched
        self.lease_s = float(lease_s)
        self.grace_s = float(grace_s)
        self.workers: list[ManagedWorker] = []
        self.events: collections.deque[Event] = collections.deque(maxlen=log_limit)
        """The events read so far (the newest ``log_limit``)."""
        self.worker_log: collections.deque[str] = collections.deque(maxlen=log_limit)
        """What the workers in this kernel logged while it had thread workers (the newest
        ``log_limit`` lines), shown under the event log."""
        self._log_handler: _KernelLogHandler | None = None
        self.monitor = QueueMonitor(client, queues=watched, interval_s=interval) if monitor else None
        self._owns_client = owned
        self._cursors: dict[str, str] = {}
        self._events_lock = threading.Lock()
        self._closed = False
        self._log_poller = Poller(self._poll_events, interval, on_error=self._show_error, name="taskq-playground-log")
        self._finalizer = weakref.finalize(self, _end_processes, self.workers, self.grace_s)
        self._build_controls()
        children = [self.monitor.view] if self.monitor is not None else []
        children += [self._task_row, self._worker_row, self._status, self._log]
        super().__init__(children=children, **kwargs)
        self._start_cursors()

    # -- controls ------------------------------------------------------------------------

    def _build_controls(self) -> None:
        w = ipywidgets
        label = {"description_width": "initial"}

        def sized(width: str) -> Any:
            return w.Layout(width=width, flex="0 0 auto")

        self.name_input = w.Dropdown(
            options=[(f"{n} - {t.description}", n) for n, t in DEMO_TASKS.items()],
            value="demo.work",
            description="task",
            style=label,
            layout=sized("360px"),
        )
        self.queue_input = w.Dropdown(
            options=self.queues, value=self.queues[0], description="queue", style=label, layout=sized("200px")
        )
        self.priority_input = w.IntSlider(
            value=5, min=1, max=10, description="priority", style=label, layout=sized("300px")
        )
        self.delay_input = w.BoundedFloatText(
            value=0.0, min=0.0, max=3600.0, step=0.5, description="delay s", style=label, layout=sized("130px")
        )
        self.fail_input = w.BoundedIntText(
            value=0, min=0, max=MAX_FAIL_TIMES, description="fails N times", style=label, layout=sized("150px")
        )
        self.seconds_input = w.BoundedFloatText(
            value=0.5, min=0.0, max=600.0, step=0.1, description="runs s", style=label, layout=sized("125px")
        )
        self.count_input = w.BoundedIntText(
            value=1, min=1, max=1000, description="how many", style=label, layout=sized("135px")
        )
        submit = w.Button(description="submit", button_style="primary", icon="paper-plane", layout=sized("110px"))
        submit.on_click(lambda _b: self._guarded(self._submit_from_controls))
        self.kind_input = w.ToggleButtons(
            options=list(WORKER_KINDS),
            value="thread",
            style={"button_width": "80px"},
            tooltips=["in this kernel (a BackgroundWorker thread)", "a `taskq worker` child process"],
        )
        self.concurrency_input = w.BoundedIntText(
            value=2, min=1, max=256, description="concurrency", style=label, layout=sized("150px")
        )
        start = w.Button(description="start", icon="play", button_style="success", layout=sized("90px"))
        stop = w.Button(
            description="stop", icon="stop", layout=sized("90px"), tooltip="stop the newest worker gracefully"
        )
        kill = w.Button(
            description="kill -9",
            icon="skull",
            button_style="danger",
            layout=sized("100px"),
            tooltip="SIGKILL the newest process worker",
        )
        start.on_click(lambda _b: self._guarded(self._start_from_controls))
        stop.on_click(lambda _b: self._guarded(self.stop_worker))
        kill.on_click(lambda _b: self._guarded(self.kill_worker))
        self.submit_button, self.start_button, self.stop_button, self.kill_button = submit, start, stop, kill
        self._buttons = [submit, start, stop, kill]
        self._inputs = [
            self.name_input,
            self.priority_input,
            self.delay_input,
            self.fail_input,
            self.seconds_input,
            self.count_input,
            self.queue_input,
            self.kind_input,
            self.concurrency_input,
        ]
        self._task_row = w.VBox(
            [
                w.HBox([self.name_input, self.queue_input, self.priority_input]),
                w.HBox([self.delay_input, self.fail_input, self.seconds_input, self.count_input, submit]),
            ]
        )
        self._worker_label = w.Label("worker")
        self._worker_row = w.HBox([self._worker_label, self.kind_input, self.concurrency_input, start, stop, kill])
        self._status = w.HTML(value="")
        self._log = w.HTML(value=self._log_html())

    def _guarded(self, action: Callable[[], Any]) -> None:
        """Run a button's action; an error goes to the status line, not the kernel log."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - a button callback: shown in the widget
            self._show_error(exc)

    def _submit_from_controls(self) -> None:
        name = self.name_input.value
        takes_seconds = DEMO_TASKS[name].takes_seconds
        for _ in range(self.count_input.value):
            self.submit(
                name=name,
                priority=self.priority_input.value,
                delay_s=self.delay_input.value,
                fail_times=self.fail_input.value if name != "demo.fail" else 0,
                seconds=self.seconds_input.value if takes_seconds else None,
                queue=self.queue_input.value,
            )

    def _start_from_controls(self) -> None:
        self.start_worker(kind=self.kind_input.value, concurrency=self.concurrency_input.value)

    def _show_error(self, exc: BaseException) -> None:
        self._say(f"{type(exc).__name__}: {exc}", error=True)

    def _say(self, text: str, *, error: bool = False) -> None:
        color = "#9b1c1c" if error else "inherit"
        alive = [w.label for w in self.workers if w.alive]
        workers = "; ".join(alive) if alive else "no worker running"
        self._status.value = (
            f'<div class="taskq-playground-status"><span style="color:{color}">{escape(text)}</span>'
            f"<br><small>{escape(workers)}</small></div>"
        )

    # -- tasks ---------------------------------------------------------------------------

    def submit(
        self,
        name: str = "demo.work",
        *,
        priority: int = 5,
        delay_s: float = 0.0,
        fail_times: int = 0,
        seconds: float | None = None,
        queue: str | None = None,
    ) -> TaskHandle:
        """Enqueue one demo task (or any task registered on ``tq``, without fail_times or
        seconds). ``fail_times``: it fails on its first N attempts, then succeeds (more
        than its retries allow and it goes to the dead-letter queue)."""
        if isinstance(fail_times, bool) or not isinstance(fail_times, int) or not 0 <= fail_times <= MAX_FAIL_TIMES:
            raise InvalidOption(f"fail_times must be an integer in 0..{MAX_FAIL_TIMES}, got {fail_times!r}")
        demo = DEMO_TASKS.get(name)
        kwargs: dict[str, Any] = {}
        if demo is not None and demo.name != "demo.fail":
            kwargs["fail_times"] = fail_times
        elif fail_times:
            raise InvalidOption(f"fail_times applies to the demo tasks that succeed eventually, not to {name!r}")
        if seconds is not None:
            if demo is None or not demo.takes_seconds:
                raise InvalidOption(f"seconds applies to demo.work, demo.slow and demo.async_work, not to {name!r}")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
                raise InvalidOption(f"seconds must be a number in 0..3600, got {seconds!r}")
            kwargs["seconds"] = float(seconds)
        handle = self.tq.enqueue(name, kwargs=kwargs, queue=queue or self.queues[0], priority=priority, delay_s=delay_s)
        self._say(
            f"submitted {name} {handle.id} priority {priority}" + (f", fails {fail_times}x" if fail_times else "")
        )
        return handle

    # -- workers -------------------------------------------------------------------------

    def start_worker(self, kind: str = "thread", concurrency: int = 2) -> ManagedWorker:
        """Start a worker on the Playground's queues: 'thread' (in this kernel; returns once
        it runs) or 'process' (a ``taskq worker`` child process; returns at once)."""
        if kind not in WORKER_KINDS:
            raise InvalidOption(f"worker kind is 'thread' or 'process', got {kind!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 256:
            raise InvalidOption(f"concurrency must be an integer in 1..256, got {concurrency!r}")
        if self._closed:
            raise InvalidOption("this playground was closed")
        if kind == "thread":
            if self._log_handler is None:
                self._log_handler = _KernelLogHandler(self)
                logging.getLogger("taskq").addHandler(self._log_handler)
            background = self.tq.start_worker(
                queues=self.queues, concurrency=concurrency, lease_s=self.lease_s, grace_s=self.grace_s
            )
            managed = ManagedWorker(kind, concurrency, background=background)
        else:
            managed = self._spawn(concurrency)
        self.workers.append(managed)
        self._say(f"started {managed.label}")
        return managed

    def _spawn(self, concurrency: int) -> ManagedWorker:
        fd, log_path = tempfile.mkstemp(prefix="taskq-playground-worker-", suffix=".log")
        command = [sys.executable, "-m", "taskq.cli", "--url", self.tq.url, "worker", DEMO_APP]
        command += ["--queues", ",".join(self.queues), "--concurrency", str(concurrency)]
        command += ["--lease-s", str(self.lease_s), "--grace-s", str(self.grace_s)]
        env = {**os.environ, "TASKQ_PREFIX": self.tq.prefix, "TASKQ_REDIS_URL": self.tq.url}
        with os.fdopen(fd, "wb") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=die_with_parent_hook(),  # the child gets SIGTERM if this kernel dies
            )
        return ManagedWorker("process", concurrency, process=process, log_path=log_path)

    def _pick(self, worker: ManagedWorker | None, *, kind: str | None = None) -> ManagedWorker:
        if worker is not None:
            if worker not in self.workers:
                raise InvalidOption("that worker was not started by this playground")
            return worker
        for candidate in reversed(self.workers):
            if candidate.alive and (kind is None or candidate.kind == kind):
                return candidate
        what = "process worker" if kind == "process" else "worker"
        note = " (an in-kernel thread worker can only be stopped)" if kind == "process" else ""
        raise InvalidOption(f"no running {what} to act on{note}")

    def stop_worker(self, worker: ManagedWorker | None = None, *, timeout_s: float = 30.0) -> ManagedWorker:
        """Stop a worker gracefully (default: the newest running one) and wait for it:
        running tasks get ``grace_s`` to finish, the rest go back to the queue."""
        target = self._pick(worker)
        if target.background is not None:
            target.background.stop(timeout_s=timeout_s)
            target.outcome = "stopped"
        elif target.process is not None:
            target.process.send_signal(signal.SIGTERM)
            code = target.process.wait(timeout_s)
            target.outcome = "stopped" if code == 0 else f"exited {code}"
        self._say(f"stopped {target.label}")
        return target

    def kill_worker(self, worker: ManagedWorker | None = None) -> ManagedWorker:
        """SIGKILL a process worker (default: the newest running one) and reap it. Its
        tasks stay leased until their leases expire (``lease_s``); then another worker's
        reaper requeues them: the crash-recovery lesson."""
        target = self._pick(worker, kind="process")
        if target.process is None:
            raise InvalidOption("only a process worker can be killed; stop an in-kernel (thread) worker instead")
        target.process.kill()
        target.process.wait(30)
        target.outcome = "killed"
        self._say(f"killed {target.label} (SIGKILL): its tasks come back when their leases expire")
        return target

    # -- the event log -------------------------------------------------------------------

    def _start_cursors(self) -> None:
        seconds, micros = self.tq.redis.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        self._cursors = dict.fromkeys(self.queues, f"{now_ms - 1}-0")

    def read_events(self) -> list[Event]:
        """Read the events that arrived since the last read (synchronous), add them to the
        log and return them."""
        with self._events_lock:
            new = list(self.tq.events(self.queues, since=dict(self._cursors), follow=False))
            for ev in new:
                self._cursors[ev.queue] = ev.cursor
            self.events.extend(new)
            if new:
                self._log.value = self._log_html()
            return new

    def _poll_events(self) -> None:
        if not self._closed:
            self.read_events()

    def _add_worker_log(self, line: str) -> None:
        # No lock: a record may be logged while read_events holds its lock, in the same thread.
        self.worker_log.append(line)
        self._log.value = self._log_html()

    def _log_html(self) -> str:
        style = "max-height:14em;overflow-y:auto;font-size:11px;margin:0"
        lines = [format_event(ev) for ev in list(self.events)[-200:]][::-1]
        text = "\n".join(lines) if lines else "(no events yet: submit a task)"
        html = f'<pre class="taskq-playground-log" style="{style}">{escape(text)}</pre>'
        if self.worker_log:
            logged = "\n".join(list(self.worker_log)[-50:][::-1])
            html += f'<pre class="taskq-playground-worker-log" style="{style}">worker log\n{escape(logged)}</pre>'
        return html

    def counts(self) -> dict[str, int]:
        """How many events of each type the log holds."""
        return dict(collections.Counter(ev.type for ev in self.events))

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> Playground:
        """Start the live event log and the monitor (displaying the Playground does this)."""
        self._log_poller.start()
        if self.monitor is not None:
            self.monitor.start()
        return self

    def stop(self) -> None:
        """Stop the event log and the monitor polling (workers keep running)."""
        self._log_poller.stop()
        if self.monitor is not None:
            self.monitor.stop()

    def close(self) -> None:
        """Stop polling, stop every worker started here (processes: SIGTERM, then SIGKILL),
        and close the widgets."""
        if "_log_poller" not in self.__dict__:  # __init__ refused its arguments
            super().close()
            return
        self._closed = True
        self.stop()
        for w in self.workers:
            if w.alive:
                with contextlib.suppress(Exception):
                    self.stop_worker(w, timeout_s=max(5.0, self.grace_s + 5.0))
        self._finalizer()
        if self._log_handler is not None:
            logging.getLogger("taskq").removeHandler(self._log_handler)
        for w in self.workers:
            if w.log_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(w.log_path)
        if self.monitor is not None:
            self.monitor.close()
        rows = [self._worker_label, self._worker_row, *self._task_row.children, self._task_row]
        for widget in [*self._inputs, *self._buttons, self._status, self._log, *rows]:
            widget.close()
        if self._owns_client:
            self.tq.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget (starts the log and the monitor), plus static HTML and text of
        the monitor's latest reading and the log, for renderers without widgets."""
        if not self._closed:
            if self.monitor is not None and self.monitor.figures is None:
                self.monitor._refresh_quietly()
            self.start()
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        monitor_html = self.monitor._repr_html_() if self.monitor is not None else ""
        data["text/html"] = f'<div class="taskq-playground-static">{monitor_html}{self._log.value}</div>'
        data["text/plain"] = repr(self)
        return data, metadata

    def __repr__(self) -> str:
        if "_log_poller" not in self.__dict__:
            return "<Playground (not initialised)>"
        alive = [w.label for w in self.workers if w.alive]
        lines = [f"<Playground queues={self.queues}, {len(self.events)} events, workers: {alive or 'none'}>"]
        if self.monitor is not None:
            lines.append(repr(self.monitor))
        return "\n".join(lines)


__all__ = ["DEMO_APP", "WORKER_KINDS", "ManagedWorker", "Playground", "format_event"]
