"""CPU time used on this machine by processes *outside* the benchmark's own process tree, over
one measurement: what tells "something else was using the machine" from the benchmark's own
load (the load average cannot: a run's previous measurement keeps it above 1 per core).

Read from ``/proc/<pid>/stat`` (Linux; elsewhere :func:`sample` returns None and nothing is
flagged). The benchmark's tree is the process named by ``BENCH_TREE_ROOT`` (``taskq_bench.run``
sets it to its own pid for the ``system_run`` processes it starts) or else this process, and
every descendant (by parent pid: redis-server, producers, workers and their pool children). A
process is in the tree if it was at the start *or* at the end of the measurement (a worker's
child orphaned on shutdown still counts as the benchmark's).

The outside CPU over a measurement is the sum, over every process outside the tree, of user +
system time plus the time of children it reaped (``cutime``, ``cstime``: short-lived processes
of another workload are counted through their parent), at the end minus at the start. Left out:
kernel threads (they also do the benchmark's own network and disk work), and the children reaped
by pid 1 (the benchmark's own orphans end there). Interrupt time is not a process's and is not
counted either.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The pid whose process tree is the benchmark's own (default: this process).
TREE_ROOT_ENV = "BENCH_TREE_ROOT"
#: ``/proc/<pid>/stat``'s flags bit of a kernel thread.
PF_KTHREAD = 0x00200000
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Proc:
    """One process's CPU times (clock ticks), from its ``/proc/<pid>/stat``."""

    pid: int
    ppid: int
    started: int
    own: int
    """utime + stime"""
    reaped: int
    """cutime + cstime: the children it waited for"""
    kernel: bool


@dataclass(slots=True)
class Sample:
    """Every process at one moment, and which of them are the benchmark's."""

    at: float
    procs: dict[tuple[int, int], Proc]
    """By (pid, start time), so a reused pid is another process."""
    tree: set[tuple[int, int]] = field(default_factory=set)


def parse_stat(text: str) -> Proc | None:
    """A :class:`Proc` from the text of ``/proc/<pid>/stat`` (the name may hold spaces and ``)``)."""
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    if not head or len(fields) < 20:
        return None
    pid = int(head.split("(", 1)[0])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    kernel = bool(int(fields[6]) & PF_KTHREAD)
    return Proc(pid, int(fields[1]), int(fields[19]), utime + stime, cutime + cstime, kernel)


def read_procs() -> dict[tuple[int, int], Proc]:
    procs: dict[tuple[int, int], Proc] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            proc = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):
            continue  # exited while being read
        if proc is not None:
            procs[(proc.pid, proc.started)] = proc
    return procs


def tree_root() -> int:
    value = os.environ.get(TREE_ROOT_ENV, "")
    return int(value) if value.isdigit() else os.getpid()


def descendants(procs: dict[tuple[int, int], Proc], root: int) -> set[tuple[int, int]]:
    """The keys of ``root`` and everything below it."""
    children: dict[int, list[Proc]] = {}
    for proc in procs.values():
        children.setdefault(proc.ppid, []).append(proc)
    found = {key for key, proc in procs.items() if proc.pid == root}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child.pid, child.started))
            todo.append(child.pid)
    return found


def sample(root: int | None = None, within: int | None = None) -> Sample | None:
    """Every process now, the tree of ``root`` (default: :func:`tree_root`) marked; None without
    ``/proc``. ``within``: only that process's tree counts as the machine (a test's sandbox)."""
    if not (PROC / "self" / "stat").exists():
        return None
    procs = read_procs()
    if within is not None:
        procs = {key: procs[key] for key in descendants(procs, within)}
    return Sample(time.monotonic(), procs, descendants(procs, tree_root() if root is None else root))


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds over one measurement: outside the benchmark's tree and inside it, and the wall time."""

    outside_s: float
    own_s: float
    wall_s: float


def usage(start: Sample, end: Sample) -> Usage:
    tree = start.tree | end.tree

    def ticks(at: Sample, inside: bool) -> int:
        total = 0
        for key, proc in at.procs.items():
            if proc.kernel or (key in tree) != inside:
                continue
            total += proc.own + (0 if proc.pid == 1 else proc.reaped)
        return total

    outside = (ticks(end, False) - ticks(start, False)) / TICKS_PER_S
    own = (ticks(end, True) - ticks(start, True)) / TICKS_PER_S
    return Usage(round(max(0.0, outside), 3), round(max(0.0, own), 3), round(end.at - start.at, 3))
