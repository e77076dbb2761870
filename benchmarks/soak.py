"""``make soak``: a long run at a steady rate with periodic worker SIGKILLs (issue 17).

It reuses ``taskq chaos``'s machinery (:mod:`taskq.chaos`): a redis-server of its own with
AOF (``appendfsync everysec``) in a temporary directory, and real ``taskq worker``
processes, here serving :mod:`soak_tasks`. The first half of the workers (at least one) are
*watched*: never killed, their RSS, open file descriptors and threads are sampled from
/proc over the run. The others are the *victims*: every ``--kill-every-s`` one of them, in
turn, is SIGKILLed and replaced. Tasks are enqueued at ``--rate`` per second with a short
result TTL (``--result-ttl-s``, default 60 s), so finished records expire during the run and
Redis memory must level off at about rate x TTL records.

Printed: one row per sample (Redis used_memory, queue depth, tasks done, each watched
worker's RSS, fds and threads), then the summary: Redis memory before the workload, at its
end and after the TTL (once the last records expired), lost tasks (submitted and never run:
must be 0) and duplicated runs (the body ran again after a kill: expected, reported).

Fails (exit 1) when a task is lost or a bound is broken. The bounds, all measured from the
*warm* sample (the first one at least ``max(TTL + 2 samples, 20 % of the run)`` in, when the
finished records have reached their steady number):

* Redis memory at the end of the workload <= warm x 1.2 + 2 MiB (the records plateau);
* Redis memory after the TTL <= before + 8 MiB (the capped event stream and bounded
  telemetry: nothing per task stays);
* each watched worker's RSS at the end <= warm x 1.1 + 8 MiB, its fds <= warm + 4, its
  threads <= warm + 4.

Usage::

    python benchmarks/soak.py                      # 30 minutes (SOAK_S overrides the default)
    SOAK_S=120 python benchmarks/soak.py --rate 50 --json soak.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

import taskq
from taskq.chaos import AofServer, retrying
from taskq.server import die_with_parent_hook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from soak_tasks import AGAIN_KEY, DONE_KEY, QUEUE, TASK_NAME  # noqa: E402

APP = "soak_tasks:tq"
MIB = 1024 * 1024


@dataclass
class Sample:
    t_s: float
    submitted: int
    done: int
    pending: int
    redis_bytes: int
    rss_kib: list[int]
    fds: list[int]
    threads: list[int]


@dataclass
class SoakReport:
    settings: dict[str, Any]
    submitted: int = 0
    lost: int = 0
    duplicated: int = 0
    kills: int = 0
    worker_exits: int = 0
    memory_before_bytes: int = 0
    memory_warm_bytes: int = 0
    memory_end_bytes: int = 0
    memory_after_ttl_bytes: int = 0
    warm_index: int = 0
    samples: list[Sample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def proc_figures(pid: int) -> tuple[int, int, int]:
    """(RSS in KiB, open file descriptors, threads) of process ``pid``, from /proc."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


class Workers:
    """The soak's ``taskq worker`` processes: slots [0, watched) are never killed."""

    def __init__(self, args: argparse.Namespace, url: str, workdir: Path) -> None:
        self.args = args
        self.url = url
        self.workdir = workdir
        self.watched = max(1, args.workers // 2)
        self.started = 0
        self.procs: list[subprocess.Popen[bytes]] = []
        self.next_victim = 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [
            sys.executable, "-m", "taskq.cli", "--url", self.url, "worker", APP,
            "--concurrency", str(self.args.concurrency), "--lease-s", str(self.args.lease_s),
            "--grace-s", "1", "--log-level", "warning",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        self.started += 1
        with (self.workdir / f"worker-{self.started}.log").open("wb") as log:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                preexec_fn=die_with_parent_hook(),
            )  # fmt: skip

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.args.workers)]

    def kill_one(self) -> str:
        """SIGKILL the next victim and start its replacement; which slot."""
        victims = len(self.procs) - self.watched
        slot = self.watched + self.next_victim % victims
        self.next_victim += 1
        self.procs[slot].kill()
        self.procs[slot].wait()
        self.procs[slot] = self._spawn()
        return f"worker slot {slot + 1}"

    def revive_exited(self) -> list[int]:
        """Restart every worker that exited on its own; their slots."""
        exited = [i for i, proc in enumerate(self.procs) if proc.poll() is not None]
        for i in exited:
            self.procs[i] = self._spawn()
        return exited

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.server = AofServer(workdir, appendfsync="everysec")
        self.report = SoakReport(settings=vars(args).copy())
        self.submitted = 0

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.server.port, socket_timeout=10, socket_connect_timeout=5)

    def used_memory(self, r: redis.Redis) -> int:
        info: Any = retrying(lambda: r.info("memory"), 30.0)
        return int(info["used_memory"])

    def sample(self, r: redis.Redis, tq: taskq.TaskQueue, t0: float, workers: Workers) -> Sample:
        figures = [proc_figures(proc.pid) for proc in workers.procs[: workers.watched]]
        s = Sample(
            t_s=round(time.monotonic() - t0, 1),
            submitted=self.submitted,
            done=int(retrying(lambda: r.bitcount(DONE_KEY), 30.0)),
            pending=retrying(lambda: tq.stats(QUEUE), 30.0).pending,
            redis_bytes=self.used_memory(r),
            rss_kib=[f[0] for f in figures],
            fds=[f[1] for f in figures],
            threads=[f[2] for f in figures],
        )
        rss = " ".join(f"{k / 1024:6.1f}" for k in s.rss_kib)
        print(
            f"{s.t_s:8.1f}s  submitted {s.submitted:8d}  done {s.done:8d}  pending {s.pending:6d}  "
            f"redis {s.redis_bytes / MIB:7.2f} MiB  rss MiB [{rss}]  fds {s.fds}  threads {s.threads}",
            flush=True,
        )
        self.report.samples.append(s)
        return s

    def enqueue_due(self, tq: taskq.TaskQueue, elapsed_s: float) -> None:
        due = min(int(elapsed_s * self.args.rate), int(self.args.duration_s * self.args.rate))
        if due <= self.submitted:
            return
        batch = [
            {"name": TASK_NAME, "args": [n, self.args.task_s], "queue": QUEUE, "result_ttl_s": self.args.result_ttl_s}
            for n in range(self.submitted, due)
        ]
        retrying(lambda: tq.enqueue_many(batch), 60.0)  # no idempotency key: a fault-free server, no retry
        self.submitted = due

    def workload(self, r: redis.Redis, tq: taskq.TaskQueue, workers: Workers) -> None:
        args = self.args
        t0 = time.monotonic()
        next_sample = next_kill = 0.0
        next_kill = args.kill_every_s
        while (elapsed := time.monotonic() - t0) < args.duration_s:
            self.enqueue_due(tq, elapsed)
            if elapsed >= next_kill and workers.procs[workers.watched :]:
                workers.kill_one()
                self.report.kills += 1
                next_kill += args.kill_every_s
            exited = workers.revive_exited()
            self.report.worker_exits += len(exited)
            if any(i < workers.watched for i in exited):
                self.report.failures.append(f"a watched worker exited on its own at {elapsed:.0f}s")
            if elapsed >= next_sample:
                self.sample(r, tq, t0, workers)
                next_sample += args.sample_s
            time.sleep(0.1)
        self.enqueue_due(tq, args.duration_s)
        deadline = time.monotonic() + 120
        while retrying(lambda: tq.stats(QUEUE), 30.0).pending and time.monotonic() < deadline:
            time.sleep(0.5)
        self.sample(r, tq, t0, workers)

    def execute(self) -> SoakReport:
        self.server.start()
        workers = Workers(self.args, self.server.url, self.workdir)
        try:
            workers.start()
            with taskq.TaskQueue(self.server.url, embedded=False) as tq, self.admin() as r:
                deadline = time.monotonic() + 60
                while len(tq.workers()) < self.args.workers and time.monotonic() < deadline:
                    time.sleep(0.1)
                self.report.memory_before_bytes = self.used_memory(r)
                self.workload(r, tq, workers)
                self.report.memory_end_bytes = self.report.samples[-1].redis_bytes
                self.account(r)
                wait_s = self.args.result_ttl_s + 15
                print(f"waiting {wait_s}s for the last records to expire (result TTL {self.args.result_ttl_s}s)")
                time.sleep(wait_s)
                self.report.memory_after_ttl_bytes = self.used_memory(r)
        finally:
            workers.stop()
            self.server.stop()
        self.check()
        return self.report

    def account(self, r: redis.Redis) -> None:
        """Lost (a task whose bit is not set) and duplicated (bits set twice)."""
        done: bytes = retrying(lambda: r.get(DONE_KEY), 30.0) or b""
        n = self.submitted
        bits = int.from_bytes(done.ljust((n + 7) // 8, b"\0")[: (n + 7) // 8], "big")
        missing = (n + 7) // 8 * 8 - n  # the padding bits past task n-1, at the low end
        ran = bin(bits >> missing).count("1")
        self.report.submitted = n
        self.report.lost = n - ran
        self.report.duplicated = int(retrying(lambda: r.bitcount(AGAIN_KEY), 30.0))

    def check(self) -> None:
        rep, args = self.report, self.args
        warm_s = max(args.result_ttl_s + 2 * args.sample_s, 0.2 * args.duration_s)
        rep.warm_index = next((i for i, s in enumerate(rep.samples) if s.t_s >= warm_s), len(rep.samples) - 1)
        warm, last = rep.samples[rep.warm_index], rep.samples[-1]
        rep.memory_warm_bytes = warm.redis_bytes
        if rep.lost:
            rep.failures.append(f"{rep.lost} tasks lost")
        if rep.memory_end_bytes > warm.redis_bytes * 1.2 + 2 * MIB:
            rep.failures.append(f"Redis memory grew from {warm.redis_bytes} to {rep.memory_end_bytes} bytes")
        if rep.memory_after_ttl_bytes > rep.memory_before_bytes + 8 * MIB:
            kept = rep.memory_after_ttl_bytes - rep.memory_before_bytes
            rep.failures.append(f"Redis kept {kept} bytes more after the TTL than before")
        for i in range(len(warm.rss_kib)):
            if last.rss_kib[i] > warm.rss_kib[i] * 1.1 + 8 * 1024:
                rep.failures.append(f"watched worker {i + 1}: RSS {warm.rss_kib[i]} -> {last.rss_kib[i]} KiB")
            if last.fds[i] > warm.fds[i] + 4:
                rep.failures.append(f"watched worker {i + 1}: fds {warm.fds[i]} -> {last.fds[i]}")
            if last.threads[i] > warm.threads[i] + 4:
                rep.failures.append(f"watched worker {i + 1}: threads {warm.threads[i]} -> {last.threads[i]}")


def summary(rep: SoakReport) -> str:
    warm, last = rep.samples[rep.warm_index], rep.samples[-1]
    lines = [
        f"submitted {rep.submitted}, lost {rep.lost}, duplicated {rep.duplicated} (runs after {rep.kills} kills), "
        f"workers that exited on their own {rep.worker_exits}",
        f"Redis used_memory: before {rep.memory_before_bytes / MIB:.2f} MiB, warm ({warm.t_s:.0f}s) "
        f"{rep.memory_warm_bytes / MIB:.2f} MiB, end of workload {rep.memory_end_bytes / MIB:.2f} MiB, "
        f"after the TTL {rep.memory_after_ttl_bytes / MIB:.2f} MiB",
    ]
    for i in range(len(warm.rss_kib)):
        lines.append(
            f"watched worker {i + 1}: RSS {warm.rss_kib[i] / 1024:.1f} -> {last.rss_kib[i] / 1024:.1f} MiB "
            f"(first sample {rep.samples[0].rss_kib[i] / 1024:.1f}), fds {warm.fds[i]} -> {last.fds[i]}, "
            f"threads {warm.threads[i]} -> {last.threads[i]}"
        )
    lines.append("OK" if rep.ok else "FAILED: " + "; ".join(rep.failures))
    return "\n".join(lines)


@contextlib.contextmanager
def workdir_of(keep: str | None) -> Iterator[Path]:
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    with tempfile.TemporaryDirectory(prefix="taskq-soak-") as name:
        yield Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=float(os.environ.get("SOAK_S") or 1800))
    parser.add_argument("--rate", type=float, default=50.0, help="tasks enqueued per second")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease-s", type=float, default=5.0)
    parser.add_argument("--task-s", type=float, default=0.01, help="how long each task sleeps")
    parser.add_argument("--kill-every-s", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=None, help="default: duration / 60, at least 5")
    parser.add_argument("--result-ttl-s", type=int, default=60)
    parser.add_argument("--workdir", default=None, help="keep the AOF and the workers' logs here")
    parser.add_argument("--json", default=None, help="write the report here too")
    args = parser.parse_args(argv)
    if args.sample_s is None:
        args.sample_s = max(5.0, args.duration_s / 60)
    if args.workers < 2:
        parser.error("--workers must be at least 2 (half are watched, half killed)")
    print(
        f"soak: {args.duration_s:g}s at {args.rate:g} tasks/s on {args.workers} workers "
        f"(SIGKILL one every {args.kill_every_s:g}s), result TTL {args.result_ttl_s}s",
        flush=True,
    )
    with workdir_of(args.workdir) as workdir:
        report = Soak(args, workdir).execute()
    print(summary(report))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
