"""What a hard kill of Redis loses of the enqueues it acknowledged, per ``appendfsync`` (issue 17).

Each round starts a redis-server with AOF on (``taskq.chaos.AofServer``: its own port and
directory), runs ``--producers`` threads that enqueue tasks one call at a time as fast as
they can, each noting every id Redis acknowledged and when, SIGKILLs redis-server once
``--kill-after`` acknowledgements have come back (a count, not a time), restarts it on the same
directory and counts the acknowledged tasks whose record is missing. ``lost_ms`` is how much
of the run before the kill those lost acknowledgements span (first lost ack to the kill).

A SIGKILL kills the process, not the machine: what Redis has written() to the AOF is in the
kernel's page cache and survives, fsynced or not. So the figure measured here is what
``everysec`` loses when Redis itself dies; what it can lose when the machine dies (up to the
last second or two of writes, never fsynced) a process kill cannot show, and this script does
not pretend to.

Usage::

    python benchmarks/aof_loss.py                       # always, everysec and no; 5 rounds each
    python benchmarks/aof_loss.py --modes everysec --rounds 20 --kill-after 5000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

import taskq
from taskq.chaos import AofServer
from taskq.keys import GlobalKeys

QUEUE = "aof"
TASK_NAME = "aof_probe"


@dataclass
class LossRound:
    appendfsync: str
    acked: int
    lost: int
    lost_ms: float
    """From the first acknowledged enqueue that was lost to the kill (0 when none was lost)."""
    acks_per_s: float


class Producer(threading.Thread):
    """Enqueues until its first error (the server died), noting (id, monotonic time) of each ack."""

    def __init__(self, url: str, counter: threading.Semaphore) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.counter = counter
        self.acked: list[tuple[str, float]] = []

    def run(self) -> None:
        with taskq.TaskQueue(self.url, embedded=False) as tq:
            n = 0
            while True:
                try:
                    handle = tq.enqueue(TASK_NAME, args=[n], queue=QUEUE, force=True)
                except (taskq.TaskqError, redis.RedisError, OSError):
                    return
                self.acked.append((str(handle.id), time.monotonic()))
                self.counter.release()
                n += 1


def missing_ids(port: int, ids: list[str]) -> list[str]:
    """Those of ``ids`` whose task record is not in the Redis on ``port``."""
    keys = GlobalKeys().queue(QUEUE)
    with redis.Redis(port=port, socket_timeout=30) as r:
        pipe = r.pipeline(transaction=False)
        for task_id in ids:
            pipe.exists(keys.task(task_id))
        found = pipe.execute()
    return [task_id for task_id, hit in zip(ids, found, strict=True) if not hit]


def measure(appendfsync: str, workdir: Path, *, producers: int = 4, kill_after: int = 2000) -> LossRound:
    """One round (see the module docstring) in ``workdir``, which must be empty."""
    server = AofServer(workdir, appendfsync=appendfsync)
    server.start()
    try:
        acks = threading.Semaphore(0)
        threads = [Producer(server.url, acks) for _ in range(producers)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for _ in range(kill_after):
            acks.acquire()
        server.kill()
        killed_at = time.monotonic()
        for thread in threads:
            thread.join(30)
        server.start()  # the same port and directory: it reloads its AOF
        acked = [ack for thread in threads for ack in thread.acked]
        lost = set(missing_ids(server.port, [task_id for task_id, _ in acked]))
    finally:
        server.stop()
    first_lost = min((at for task_id, at in acked if task_id in lost), default=killed_at)
    return LossRound(
        appendfsync=appendfsync,
        acked=len(acked),
        lost=len(lost),
        lost_ms=round((killed_at - first_lost) * 1000, 1),
        acks_per_s=round(len(acked) / (killed_at - started), 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--modes", default="always,everysec,no", help="appendfsync settings, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=2000, help="acknowledged enqueues before the kill")
    parser.add_argument("--json", default=None, help="write every round here too")
    args = parser.parse_args(argv)
    rounds: list[LossRound] = []
    for mode in args.modes.split(","):
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="taskq-aof-") as name:
                one = measure(mode, Path(name), producers=args.producers, kill_after=args.kill_after)
            rounds.append(one)
            print(
                f"appendfsync {one.appendfsync:8s}  acked {one.acked:6d} ({one.acks_per_s:7.0f}/s)  "
                f"lost {one.lost:4d}  spanning {one.lost_ms:7.1f} ms before the kill",
                flush=True,
            )
    for mode in args.modes.split(","):
        mine = [r for r in rounds if r.appendfsync == mode]
        print(
            f"{mode}: {len(mine)} rounds, {sum(r.acked for r in mine)} acknowledged, "
            f"{sum(r.lost for r in mine)} lost (most in one round {max(r.lost for r in mine)}, "
            f"spanning at most {max(r.lost_ms for r in mine):.1f} ms)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rounds], indent=1))
    always_lost = sum(r.lost for r in rounds if r.appendfsync == "always")
    return 1 if always_lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
