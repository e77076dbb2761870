"""Redis CPU per task of the hot scripts (issue 14): enqueue.lua (single ``tq.enqueue``),
claim.lua and complete.lua (one task per call, and batches of 16), read from INFO
commandstats (``usec`` of FCALL and EVALSHA: the script and the commands it calls, on the
server).

Each phase runs ``--calls`` calls per round for ``--rounds`` rounds on a fresh local
redis-server; the table shows the lowest and the median round (µs per task). Commandstats
time is wall time inside the server, so a busy machine inflates it: the lowest round is the
steadier figure. ``--ref REF`` also runs the Lua scripts of a git ref (same Python), rounds
alternating with the working tree's, for a before/after on the same machine load.
``--calls-as`` runs the scripts as Redis Functions (FCALL, taskq's default where the server has
them), as EVALSHA (``TASKQ_FUNCTIONS=0``: taskq.functions), or ``both`` (the default), rounds
alternating; a column whose calls did not go as FCALL (a ``--ref`` whose Lua does not load as
a library) says so.

``--callgrind`` runs the server under valgrind and counts its instructions per task instead
(everything the server does for the call: reading it, the script, the reply), the same on a
busy machine; the once-a-second window checkpoint is put off then (a call is ~50x slower
under valgrind, so fewer calls would share it).

    .venv/bin/python benchmarks/script_cost.py [--calls 2000] [--rounds 5] [--ref HEAD] [--callgrind]
        [--calls-as both|fcall|evalsha]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from typing import Any

import redis
from taskq_bench.commandstats import script_calls
from taskq_bench.private_redis import Instructions, start

import taskq
from taskq import functions, scripts
from taskq import ops as ops_module
from taskq.server import free_port

BATCH = 16
QUEUE = "cost"


def lua_reader(ref: str | None) -> Callable[[str], str]:
    """Reads ``taskq/lua/<relative>`` from the working tree (None) or from a git ref."""
    if ref is None:
        return ORIGINAL_READ
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True)
    cache: dict[str, str] = {}

    def read(relative: str) -> str:
        if relative not in cache:
            show = ["git", "-C", root.stdout.strip(), "show", f"{ref}:taskq/lua/{relative}"]
            cache[relative] = subprocess.run(show, capture_output=True, text=True, check=True).stdout
        return cache[relative]

    return read


ORIGINAL_READ = scripts._read


def use_lua(reader: Callable[[str], str]) -> None:
    scripts._read = reader  # type: ignore[assignment]
    scripts.load_script.cache_clear()
    scripts.library.cache_clear()
    ops_module._enqueue_head.cache_clear()  # holds the enqueue script's SHA


def make_queue(url: str, calls_as: str) -> taskq.TaskQueue:
    """A client whose script calls go as ``calls_as`` (the switch is read when it is made)."""
    os.environ[functions.ENV_SWITCH] = "1" if calls_as == "fcall" else "0"
    tq = taskq.TaskQueue(url)

    @tq.task(name="script_cost.noop")
    def noop(x: int) -> None:
        return None

    return tq


class Probe:
    def __init__(self, tq: taskq.TaskQueue, r: redis.Redis, counter: Instructions | None) -> None:
        self.tq, self.r, self.counter = tq, r, counter
        self.fcalls = 0  # FCALLs seen (commandstats), to tell a column that fell back to EVALSHA

    def script_usec(self, run: Callable[[], int]) -> float:
        """µs of FCALL and EVALSHA per task over one call of ``run`` (which returns its task
        count); with callgrind, thousands of server instructions per task instead."""
        if self.counter is not None:
            # under valgrind a call takes ~50x longer, so the once-a-second window checkpoint
            # would be paid by ~50x fewer calls: it is put off (a checkpoint second far ahead)
            meta = self.tq.ops.queue_keys(QUEUE).telemetry[0]
            self.r.hset(meta, "ckpt_s", 10**11)
            self.counter.zero()
            tasks = run()
            return self.counter.dump() / 1000 / max(1, tasks)
        self.r.config_resetstat()
        tasks = run()
        stats: dict[str, Any] = self.r.info("commandstats")
        self.fcalls += int(stats.get("cmdstat_fcall", {"calls": 0})["calls"])
        return script_calls(stats)[1] / max(1, tasks)

    def enqueue(self, calls: int) -> int:
        for i in range(calls):
            self.tq.enqueue("script_cost.noop", (i,), queue=QUEUE)
        return calls

    def fill(self, n: int) -> None:
        self.tq.enqueue_many([{"name": "script_cost.noop", "args": (i,), "queue": QUEUE} for i in range(n)])

    def claim(self, calls: int, per_call: int, out: list[Any]) -> int:
        ops, run = self.tq.ops, self.tq._exec.run
        for _ in range(calls):
            out.append(run(ops.claim(QUEUE, per_call, 60_000, "cost-worker")))
        return sum(len(b) for b in out)

    def complete(self, batches: list[Any]) -> int:
        ops, run = self.tq.ops, self.tq._exec.run
        for batch in batches:
            run(ops.finish([ops.complete_command(t, "null") for t in batch]))
        return sum(len(b) for b in batches)

    def round(self, calls: int) -> dict[str, float]:
        row = {"enqueue x1": self.script_usec(lambda: self.enqueue(calls))}
        for per_call in (1, BATCH):
            n = calls if per_call == 1 else max(1, calls // BATCH)
            self.drain()
            self.fill(n * per_call)
            batches: list[Any] = []
            row[f"claim x{per_call}"] = self.script_usec(lambda n=n, p=per_call, b=batches: self.claim(n, p, b))
            row[f"complete x{per_call}"] = self.script_usec(lambda b=batches: self.complete(b))
        self.drain()
        return row

    def drain(self) -> None:
        ops, run = self.tq.ops, self.tq._exec.run
        while batch := run(ops.claim(QUEUE, 1000, 60_000, "cost-drain")):
            run(ops.finish([ops.complete_command(t, "null") for t in batch]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per phase and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ref", help="also run the Lua of this git ref, rounds alternating")
    parser.add_argument("--callgrind", action="store_true", help="count server instructions (valgrind)")
    parser.add_argument("--calls-as", choices=("both", "fcall", "evalsha"), default="both")
    args = parser.parse_args()
    port = free_port()
    cg_dir = tempfile.mkdtemp(prefix="taskq-cost-") if args.callgrind else None
    server = start(port, callgrind_dir=cg_dir, hz=1)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        counter = Instructions(server.pid, cg_dir) if cg_dir else None
        readers = {"tree": lua_reader(None)}
        if args.ref:
            readers[args.ref] = lua_reader(args.ref)
        modes = ("fcall", "evalsha") if args.calls_as == "both" else (args.calls_as,)
        variants = {f"{lua} {mode}": (reader, mode) for lua, reader in readers.items() for mode in modes}
        results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        fcalls = dict.fromkeys(variants, 0)
        for _ in range(args.rounds):
            for name, (reader, mode) in variants.items():
                use_lua(reader)
                with make_queue(url, mode) as tq:
                    probe = Probe(tq, redis.Redis.from_url(url), counter)
                    probe.round(max(10, args.calls // 10))  # warm-up: scripts loaded, keys exist
                    results[name].append(probe.round(args.calls))
                    fcalls[name] += probe.fcalls
        use_lua(ORIGINAL_READ)
        for name, (_, mode) in variants.items():
            if mode == "fcall" and not fcalls[name] and not cg_dir:
                print(f"note: {name!r} made no FCALL (its Lua did not load as a library): its calls were EVALSHA")
        load = os.getloadavg()
        unit = "server kilo-instructions (callgrind)" if cg_dir else "Redis µs (FCALL/EVALSHA commandstats)"
        print(
            f"{unit} per task, {args.calls} calls x {args.rounds} rounds, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        phases = list(next(iter(results.values()))[0])
        header = f"{'script':14s}" + "".join(f" {v[:16]:>16s} min {'median':>6s}" for v in variants)
        print(header)
        for phase in phases:
            cells = ""
            for v in variants:
                values = [r[phase] for r in results[v]]
                cells += f" {min(values):20.1f} {statistics.median(values):6.1f}"
            print(f"{phase:14s}{cells}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if cg_dir:
            shutil.rmtree(cg_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
