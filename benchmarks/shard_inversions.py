"""How far from strict priority a sharded queue drains (issue 15): N tasks with random
priorities 1..10 enqueued into one queue split into K sub-queues, then drained by one worker;
counts the priority inversions (pairs that started in the wrong order: the lower priority
first) against all pairs of unequal priority, for each K and seed. Not timed.

    .venv/bin/python benchmarks/shard_inversions.py [--tasks 600] [--shards 1 2 3 8] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import threading
import time

import taskq
from taskq.keys import queue_of_task_id
from taskq.server import die_with_parent_hook, free_port, ping


def inversions(priorities: list[int]) -> tuple[int, int]:
    """(pairs started lower priority first, pairs of unequal priority), in O(n * 10)."""
    wrong = unequal = 0
    seen = [0] * 11  # tasks started so far, per priority
    for p in priorities:
        wrong += sum(seen[1:p])  # earlier tasks of lower priority than this one
        unequal += sum(seen) - seen[p]
        seen[p] += 1
    return wrong, unequal


def drain(url: str, shards: int, tasks: int, seed: int, concurrency: int) -> dict[str, object]:
    started: list[tuple[str, int]] = []
    lock = threading.Lock()
    with taskq.TaskQueue(url) as tq:
        tq.redis.flushall()

        @tq.task(queue="prio", name="job")
        def job(p: int) -> None:
            with lock:
                started.append((queue_of_task_id(taskq.current_task().id), p))

        tq.configure_queue("prio", shards=shards)
        rng = random.Random(seed)
        prios = [rng.randint(1, 10) for _ in range(tasks)]
        tq.enqueue_many([{"name": "job", "args": [p], "queue": "prio", "priority": p} for p in prios])
        worker = tq.start_worker(queues=["prio"], concurrency=concurrency)
        try:
            while len(started) < tasks:
                time.sleep(0.01)
        finally:
            worker.stop()
    wrong, unequal = inversions([p for _, p in started])
    per_shard_sorted = all(
        [p for q, p in started if q == sub] == sorted((p for q, p in started if q == sub), reverse=True)
        for sub in {q for q, _ in started}
    )
    return {
        "shards": shards,
        "seed": seed,
        "concurrency": concurrency,
        "inversions": wrong,
        "unequal_pairs": unequal,
        "fraction": round(wrong / unequal, 4) if unequal else 0.0,
        "strict_within_each_shard": per_shard_sorted,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 3, 8])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    port = free_port()
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent_hook())
    try:
        while not ping("127.0.0.1", port):
            time.sleep(0.05)
        url = f"redis://127.0.0.1:{port}/0"
        for shards in args.shards:
            rows = [drain(url, shards, args.tasks, seed, args.concurrency) for seed in range(args.seeds)]
            for row in rows:
                print(json.dumps(row))
            fractions = [float(r["fraction"]) for r in rows]  # type: ignore[arg-type]
            print(json.dumps({"shards": shards, "median_fraction": statistics.median(fractions)}))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
