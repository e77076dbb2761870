"""A private redis-server for the cost scripts (``script_cost.py``, ``enqueue_parts.py``,
``paced_cost.py``), optionally under callgrind, and the instruction counter that reads it.

They start the process themselves, not through :class:`taskq.server.EmbeddedServer`, because
they need its pid (callgrind control, ``/proc`` CPU time) and, for callgrind, valgrind in front.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from taskq.server import die_with_parent_hook, ping


def start(port: int, *, callgrind_dir: str | None = None, hz: int | None = None) -> subprocess.Popen[bytes]:
    """redis-server on ``port`` (no persistence), ready: it answers PING. Under valgrind's
    callgrind, writing into ``callgrind_dir``, when one is given. ``hz``: its ``--hz``."""
    argv = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no"]  # fmt: skip
    if hz is not None:
        argv += ["--hz", str(hz)]
    if callgrind_dir:
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_dir}/cg.out", *argv]
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdout=quiet, stderr=quiet, preexec_fn=die_with_parent_hook())
    deadline = time.monotonic() + 60
    while not ping("127.0.0.1", port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise SystemExit("redis-server did not start")
        time.sleep(0.05)
    return proc


class Instructions:
    """Instructions the server ran (all of it: reading, parsing, the script, the reply),
    counted by callgrind: zeroed before a phase, dumped after it."""

    def __init__(self, pid: int, directory: str) -> None:
        self.pid, self.directory = pid, directory

    def _control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.pid)], capture_output=True, check=True)

    def zero(self) -> None:
        self._control("-z")

    def dump(self) -> int:
        before = set(os.listdir(self.directory))
        self._control("-d")
        (new,) = set(os.listdir(self.directory)) - before
        with open(os.path.join(self.directory, new)) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        raise RuntimeError(f"no totals in {new}")
