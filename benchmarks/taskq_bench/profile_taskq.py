"""Where taskq spends its time: py-spy profiles of a draining worker and of the producer
calls, plus Redis's own per-command CPU (INFO commandstats).

    python -m taskq_bench.profile_taskq --out bench-results/profile      # needs py-spy on PATH
                                                                       # or in .venv-bench

* **worker**: ``--tasks`` tasks queued (``--task io``, one Redis round trip each, or
  ``noop``), one ``taskq worker`` process (its default concurrency, or ``--concurrency C``)
  drains them under ``py-spy record``; the top functions by own time and by total
  time are printed, and the raw folded stacks kept (``flamegraph.pl`` or speedscope read them).
* **enqueue**: ``py-spy record`` on a process doing single sync enqueues, single async
  enqueues, and bulk ``enqueue_many``; the same summaries.
* **redis**: for each phase, Redis CPU µs per command from INFO commandstats, per task.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from taskq.server import EmbeddedServer
from taskq_bench import procs, recorder
from taskq_bench.systems.base import HARNESS_PATH, ROOT

PRODUCER_CODE = """
import asyncio, os, sys, time
import taskq
url, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
name = "taskq_bench.systems.taskq." + (sys.argv[4] if len(sys.argv) > 4 else "noop")
if mode == "async":
    async def main():
        tq = taskq.AsyncTaskQueue(url)
        for _ in range(count):
            await tq.enqueue(name, [0.0], queue="bench", force=True)
        await tq.aclose()
    asyncio.run(main())
elif mode == "bulk":
    tq = taskq.TaskQueue(url)
    for _ in range(count // 1000):
        tq.enqueue_many([{"name": name, "args": [0.0], "queue": "bench", "force": True}] * 1000)
else:
    tq = taskq.TaskQueue(url)
    for _ in range(count):
        tq.enqueue(name, [0.0], queue="bench", force=True)
"""


def py_spy() -> str:
    beside_python = Path(sys.executable).parent / "py-spy"  # the [bench] extra installs it into the venv
    found = shutil.which("py-spy") or (str(beside_python) if beside_python.exists() else "")
    found = found or str(ROOT / ".venv-bench" / "bin" / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy (into any venv) and put it on PATH")
    return found


def summarize_folded(path: Path, top: int = 25) -> str:
    """Own-time and total-time tables from py-spy's raw (folded) output."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "own time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines += ["total time (function and what it calls):"]
    lines += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` → ``func (module.py:123)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')')).name})" if where else name


def commandstats(client: redis.Redis) -> dict[str, tuple[int, float]]:
    info: Any = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), float(v["usec"])) for k, v in info.items()}


def commandstats_delta(before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]], tasks: int) -> str:
    rows = []
    for command, (calls, usec) in after.items():
        calls0, usec0 = before.get(command, (0, 0.0))
        if calls > calls0:
            rows.append((usec - usec0, command, calls - calls0))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    lines = [f"redis CPU {total / tasks:.1f} µs per task ({total / 1e6:.2f} s for {tasks} tasks):"]
    lines += [f"  {command:22} {calls:8} calls  {usec / calls:7.1f} µs/call  {usec / tasks:6.1f} µs/task"
              for usec, command, calls in rows[:12]]  # fmt: skip
    return "\n".join(lines)


def env_for(url: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=HARNESS_PATH, TASKQ_REDIS_URL=url, **{recorder.URL_ENV: url})


def profile_worker(url: str, tasks: int, out: Path, task: str = "io", concurrency: int | None = None) -> str:
    client = redis.Redis.from_url(url)
    client.flushall()
    subprocess.run([sys.executable, "-c", PRODUCER_CODE, url, "bulk", str(tasks), task], env=env_for(url), check=True)
    argv = [sys.executable, "-m", "taskq.cli", "worker", "taskq_bench.systems.taskq:tq", "--queues", "bench",
            "--log-level", "warning"]  # fmt: skip
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    before = commandstats(client)
    worker = procs.launch(argv, env_for(url), ROOT, out / "worker.log")
    folded = out / "worker.folded"
    spy_argv = [py_spy(), "record", "-p", str(worker.proc.pid), "-r", "250", "-f", "raw", "-o", str(folded),
                "--nonblocking"]  # fmt: skip
    spy = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while recorder.done_count(client) < tasks and time.monotonic() < deadline:
        time.sleep(0.05)
    done, window = recorder.progress(client)
    procs.stop([worker])
    spy.wait(30)
    rate = done / (window[1] - window[0]) if window else 0.0
    stats = commandstats_delta(before, commandstats(client), max(done, 1))
    setting = f"concurrency {concurrency}" if concurrency is not None else "default concurrency"
    head = f"worker drained {done} {task} tasks at {rate:,.0f}/s ({setting}, under py-spy)"
    return f"{head}\n{summarize_folded(folded)}\n{stats}"


def profile_enqueue(url: str, mode: str, count: int, out: Path) -> str:
    client = redis.Redis.from_url(url)
    client.flushall()
    before = commandstats(client)
    folded = out / f"enqueue-{mode}.folded"
    started = time.perf_counter()
    subprocess.run([py_spy(), "record", "-r", "250", "-f", "raw", "-o", str(folded), "--", sys.executable, "-c",
                    PRODUCER_CODE, url, mode, str(count)], env=env_for(url), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - started
    stats = commandstats_delta(before, commandstats(client), count)
    head = f"enqueue {mode}: {count} in {seconds:.1f}s (incl. start-up, under py-spy)"
    return f"{head}\n{summarize_folded(folded)}\n{stats}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "profile")
    parser.add_argument("--tasks", type=int, default=60_000)
    parser.add_argument("--only", choices=["worker", "enqueue"], default=None)
    parser.add_argument("--task", choices=["io", "noop"], default="io", help="the worker's task body")
    parser.add_argument("--concurrency", type=int, default=None, help="default: taskq worker's own")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with EmbeddedServer(kind="redis-server") as server:
        reports = []
        if args.only in (None, "worker"):
            reports.append(profile_worker(server.url, args.tasks, args.out, args.task, args.concurrency))
        if args.only in (None, "enqueue"):
            reports += [profile_enqueue(server.url, mode, n, args.out)
                        for mode, n in (("sync", 10_000), ("async", 10_000), ("bulk", 50_000))]  # fmt: skip
    text = "\n\n".join(reports)
    (args.out / "profile.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
