"""Starting, inspecting and cleaning up real worker processes for the fault and pool tests.

Imported by the tests as ``apps.procs`` (pytest puts ``tests/`` on sys.path); the worker
processes themselves import ``tests.apps.faultapp`` with the repository as their cwd.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_module(relative: str) -> ModuleType:
    """Import a script of the repository that is not in a package (``benchmarks/aof_loss.py``)
    as a module named after its file."""
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


APP = "tests.apps.faultapp:tq"


def wait_until(predicate: Callable[[], object], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is truthy; a generous bound, never a speed assertion."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``: psutil if installed, else /proc."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return sorted(c.pid for c in psutil.Process(pid).children() if c.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return []
    found: set[int] = set()
    listed = glob.glob(f"/proc/{pid}/task/*/children")
    if listed:
        for path in listed:
            with contextlib.suppress(OSError), open(path) as f:
                found.update(int(x) for x in f.read().split())
    else:  # kernels without CONFIG_PROC_CHILDREN: scan every process's parent
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError), open(stat) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(stat.split("/")[2]))
    return sorted(p for p in found if alive(p))


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class Workers:
    """Worker processes started by one test; :meth:`cleanup` kills whatever is left."""

    def __init__(self, url: str, logdir: Path) -> None:
        self.url = url
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}
        self._files: list[object] = []
        self.adopted: set[int] = set()  # other pids to kill at cleanup (e.g. a pool's children)

    def start(self, *options: str, app: str = APP, wait_ready: bool = True) -> subprocess.Popen[bytes]:
        """Start ``taskq --url URL worker APP OPTIONS`` and (by default) wait until it serves."""
        argv = [sys.executable, "-m", "taskq.cli", "--url", self.url, "worker", app, *options]
        log_path = self.logdir / f"worker-{len(self.procs)}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed in cleanup
        self._files.append(log)
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        env.pop("TASKQ_REDIS_URL", None)
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self._logs[proc.pid] = log_path
        if wait_ready:
            wanted = 1
            if "--processes" in options:
                wanted = int(options[options.index("--processes") + 1])
            wait_until(
                lambda: self.log(proc).count("serving") >= wanted or proc.poll() is not None,
                timeout_s=30,
                what=f"worker process {proc.pid} to start",
            )
            assert proc.poll() is None, f"worker exited with {proc.returncode}:\n{self.log(proc)}"
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return self._logs[proc.pid].read_text(errors="replace")

    def wait_exit(self, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {proc.pid} still running after {timeout_s}s:\n{self.log(proc)}") from None

    def cleanup(self) -> None:
        """SIGCONT and SIGKILL every process started here and all their descendants."""
        for proc in self.procs:
            if proc.poll() is None:
                family = [proc.pid]
                i = 0
                while i < len(family):
                    family += children(family[i])
                    i += 1
                for pid in reversed(family):
                    signal_pid(pid, signal.SIGCONT)
                    signal_pid(pid, signal.SIGKILL)
                for pid in family[1:]:
                    deadline = time.monotonic() + 10
                    while alive(pid) and time.monotonic() < deadline:
                        time.sleep(0.01)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for pid in self.adopted:
            if not alive(pid):
                continue
            signal_pid(pid, signal.SIGCONT)
            signal_pid(pid, signal.SIGKILL)
        for f in self._files:
            f.close()  # type: ignore[attr-defined]
