"""Running workers from the command line: one in this process, or a supervised pool.

``taskq worker APP --processes P`` starts P child processes, each a full worker
(``taskq worker APP --processes 1``), and restarts any child that dies unexpectedly,
backing off when one keeps crashing. SIGTERM or SIGINT is passed on to the children,
which shut down gracefully; a second signal makes them skip their grace period.
Children die with the supervisor (PR_SET_PDEATHSIG), and since every task they held
is leased, whatever they were running is requeued when their leases expire.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from taskq.backoff import exponential_s
from taskq.errors import InvalidOption
from taskq.server import die_with_parent_hook

log = logging.getLogger("taskq.pool")

RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
STABLE_AFTER_S = 10.0


@dataclass
class _Child:
    slot: int
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    crashes: int = 0
    signalled: int = 0  # signals passed on to it so far (at most two: SIGTERM, then SIGINT)


class Supervisor:
    """Keeps ``processes`` worker processes running until told to stop."""

    def __init__(self, argv: list[str], processes: int, env: dict[str, str] | None = None) -> None:
        if processes < 1:
            raise InvalidOption(f"--processes must be >= 1, got {processes}")
        self.argv = argv
        self.processes = processes
        self.env = env
        self.children: dict[int, _Child] = {}
        self.restarts = 0
        self._signals = 0

    def _spawn(self, slot: int, crashes: int = 0) -> None:
        proc = subprocess.Popen(
            self.argv,
            env=self.env,
            preexec_fn=die_with_parent_hook(),
        )
        self.children[slot] = _Child(slot, proc, crashes=crashes)
        log.info("worker process %d started (pid %d)", slot, proc.pid)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Only counted here: the run loop passes it on (_forward). A handler that sent it
        # itself could run inside _spawn, between fork and the new child's entry in
        # self.children, and that child would never hear of it: the pool would wait forever.
        self._signals += 1

    def _forward(self) -> None:
        """Pass the signals received on to every child that has not had them yet: the first
        one as SIGTERM (a graceful stop), a second as SIGINT (children treat a second signal
        as "now")."""
        wanted = min(self._signals, 2)
        for child in self.children.values():
            while child.signalled < wanted:
                child.signalled += 1
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM if child.signalled == 1 else signal.SIGINT)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.processes):
                if not self._signals:  # told to stop while starting: start no more
                    self._spawn(slot)
            pending_restart: dict[int, tuple[float, int]] = {}  # slot -> (when, crashes in a row)
            while self.children or pending_restart:
                self._forward()
                time.sleep(0.1)
                self._forward()
                for slot, child in list(self.children.items()):
                    code = child.proc.poll()
                    if code is None:
                        continue
                    del self.children[slot]
                    if self._signals:
                        continue
                    lived = time.monotonic() - child.started
                    crashes = 0 if lived > STABLE_AFTER_S else child.crashes + 1
                    delay = exponential_s(crashes, RESTART_MIN_S, RESTART_MAX_S) if crashes else 0.0
                    log.warning("worker process %d (pid %d) exited with %s; restarting in %.1fs",
                                slot, child.proc.pid, code, delay)  # fmt: skip
                    pending_restart[slot] = (time.monotonic() + delay, crashes)
                    self.restarts += 1
                for slot, (when, crashes) in list(pending_restart.items()):
                    if self._signals:
                        del pending_restart[slot]
                    elif time.monotonic() >= when:
                        del pending_restart[slot]
                        self._spawn(slot, crashes)
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def child_argv(app: str, options: list[str]) -> list[str]:
    """The command line of one worker process of a pool."""
    return [sys.executable, "-m", "taskq.cli", "worker", app, "--processes", "1", *options]


def run_supervisor(app: str, processes: int, options: list[str], url: str) -> int:
    env = dict(os.environ, TASKQ_REDIS_URL=url)
    return Supervisor(child_argv(app, options), processes, env).run()
