"""Worker processes of the system under test: started in a session of their own (so the
whole tree — pool children included — is stopped together), logging to a file, and always
stopped within a bounded time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskq.server import die_with_parent_hook


@dataclass
class Launched:
    """One worker command, running."""

    argv: list[str]
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, limit: int = 1500) -> str:
        try:
            return self.log.read_bytes()[-limit:].decode(errors="replace").strip()
        except OSError:
            return ""

    @property
    def exited(self) -> int | None:
        return self.proc.poll()


def launch(argv: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> Launched:
    """Start ``argv`` in a new session, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent_hook(),  # a killed harness leaves no workers behind
        )
    return Launched(list(argv), proc, log)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(launched: Sequence[Launched], grace_s: float = 5.0) -> None:
    """SIGTERM every process group, wait up to ``grace_s``, then SIGKILL what is left."""
    for item in launched:
        _signal_group(item.proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for item in launched:
        with contextlib.suppress(subprocess.TimeoutExpired):
            item.proc.wait(max(0.0, deadline - time.monotonic()))
    for item in launched:
        _signal_group(item.proc, signal.SIGKILL)  # pool children may outlive their parent
        with contextlib.suppress(subprocess.TimeoutExpired):
            item.proc.wait(2)


def check_alive(launched: Sequence[Launched]) -> None:
    """Raise with the log's tail if a worker command has already exited."""
    for item in launched:
        code = item.exited
        if code is not None:
            raise WorkerExited(f"{' '.join(item.argv[:4])}… exited with {code}: {item.tail()}")


class WorkerExited(RuntimeError):
    """A worker command of the system under test exited during a run."""
