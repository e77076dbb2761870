"""The cost of ``durable=True`` per enqueue (issue 15): a primary and one replica on loopback,
single ``tq.enqueue`` calls and ``enqueue_many`` of 1,000, with and without the WAIT for the
replica, rounds rotated. Prints one JSON line per round and the medians.

    .venv/bin/python benchmarks/durable_cost.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time

import redis

import taskq
from taskq.server import die_with_parent_hook, free_port, ping


def start(port: int, *extra: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent_hook())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    primary, replica = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="taskq-durable-")
    procs = [
        start(primary, "--dir", tempfile.mkdtemp(dir=workdir)),
        start(replica, "--dir", tempfile.mkdtemp(dir=workdir), "--replicaof", "127.0.0.1", str(primary)),
    ]
    try:
        while not (ping("127.0.0.1", primary) and ping("127.0.0.1", replica)):
            time.sleep(0.05)
        with redis.Redis(port=replica, decode_responses=True) as r:
            while r.info("replication").get("master_link_status") != "up":
                time.sleep(0.05)
        url = f"redis://127.0.0.1:{primary}/0"
        results: dict[str, list[float]] = {}
        for n in range(args.rounds):
            for durable in (False, True) if n % 2 == 0 else (True, False):
                with taskq.TaskQueue(url, durable=durable) as tq:
                    tq.enqueue("t", force=True)  # queue registered, scripts loaded
                    started = time.perf_counter()
                    for _ in range(args.calls):
                        tq.enqueue("t", force=True)
                    single_us = (time.perf_counter() - started) / args.calls * 1e6
                    batch = [{"name": "t", "force": True}] * 1000
                    started = time.perf_counter()
                    for _ in range(5):
                        tq.enqueue_many(batch)
                    bulk_us = (time.perf_counter() - started) / 5000 * 1e6
                    tq.redis.flushall()
                row = {"round": n, "durable": durable, "single_us": round(single_us, 1), "bulk_us": round(bulk_us, 2)}
                print(json.dumps(row))
                results.setdefault(f"single durable={durable}", []).append(single_us)
                results.setdefault(f"bulk durable={durable}", []).append(bulk_us)
        print(json.dumps({k: round(statistics.median(v), 2) for k, v in results.items()}))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
