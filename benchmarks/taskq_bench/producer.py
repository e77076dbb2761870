"""Producer processes: enqueue through a system's public API, started together.

``python -m taskq_bench.producer --system S --url U --mode M …`` imports the adapter,
connects, prints ``READY``, then waits for one line on stdin: the wall-clock time to
start at. It prints one JSON line with what it did and exits. Several producers get the
same start time, so "K producers" means K processes enqueueing at once.

Modes: ``single`` (``count`` single enqueues, one after another), ``bulk`` (``count`` in
bulk calls of ``batch``), ``prefill`` (as fast as the API allows: bulk if there is one,
else concurrent async sends or a plain loop) and ``openloop`` (the schedule of
:mod:`taskq_bench.openloop`, this producer's share of it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

from taskq_bench.openloop import Schedule, SendLog, run_open_loop, threaded
from taskq_bench.recorder import URL_ENV
from taskq_bench.stats import summarize_ms
from taskq_bench.systems.base import HARNESS_PATH, ROOT, Adapter, Kind, Workload

Mode = Literal["single", "bulk", "prefill", "openloop"]
READY = "READY"
PREFILL_CONCURRENCY = 200
#: Sends in flight at once per producer process: an async client's connection pool, or a
#: blocking client's threads. A send due while all are busy waits, and that wait shows as
#: lateness (latency still counts from the intended time).
OPENLOOP_IN_FLIGHT = 64


@dataclass(frozen=True, slots=True)
class Job:
    """What one producer process does."""

    mode: Mode
    kind: Workload = "noop"
    count: int = 1000
    batch: int = 1000
    rate_per_s: float = 0.0
    offset: int = 0
    stride: int = 1
    warmup: int = 0
    """No-op tasks sent (one by one, intended time 0) before READY: connections, pools and
    caches of the client and the workers are warm when the measured part starts."""

    def argv(self) -> list[str]:
        return ["--mode", self.mode, "--kind", self.kind, "--count", str(self.count), "--batch", str(self.batch),
                "--rate", str(self.rate_per_s), "--offset", str(self.offset), "--stride", str(self.stride),
                "--warmup", str(self.warmup)]  # fmt: skip


# ---------------------------------------------------------------------------
# Inside the producer process


def _kinds(kind: Workload, count: int) -> list[Kind]:
    return ["cpu" if i % 2 == 0 else "sleep" for i in range(count)] if kind == "mix" else [kind] * count


def sync_closed_loop(adapter: Adapter, job: Job) -> None:
    if job.mode == "single" or (job.mode == "prefill" and adapter.bulk_api is None):
        for kind in _kinds(job.kind, job.count):
            adapter.send(kind, 0.0)
        return
    kinds = _kinds(job.kind, job.count)
    for start in range(0, job.count, job.batch):
        chunk = kinds[start : start + job.batch]
        for kind in dict.fromkeys(chunk):
            adapter.send_bulk(kind, chunk.count(kind))


async def async_closed_loop(adapter: Adapter, job: Job) -> None:
    kinds = _kinds(job.kind, job.count)
    if job.mode == "single":
        for kind in kinds:
            await adapter.asend(kind, 0.0)
        return
    for start in range(0, job.count, job.batch):
        chunk = kinds[start : start + job.batch]
        if adapter.bulk_api is not None:
            for kind in dict.fromkeys(chunk):
                await adapter.asend_bulk(kind, chunk.count(kind))
            continue
        for first in range(0, len(chunk), PREFILL_CONCURRENCY):  # prefill without a bulk API
            await asyncio.gather(*(adapter.asend(k, 0.0) for k in chunk[first : first + PREFILL_CONCURRENCY]))


async def open_loop(adapter: Adapter, job: Job, t0: float) -> SendLog:
    schedule = Schedule(job.rate_per_s, job.count, t0, job.offset, job.stride)
    kind: Kind = "noop" if job.kind == "mix" else job.kind
    if adapter.async_api:

        async def send(intended: float) -> None:
            await adapter.asend(kind, intended)

        return await run_open_loop(schedule, send, max_in_flight=OPENLOOP_IN_FLIGHT)
    with ThreadPoolExecutor(OPENLOOP_IN_FLIGHT, thread_name_prefix="send") as pool:
        send_sync = threaded(lambda t: adapter.send(kind, t), pool)
        return await run_open_loop(schedule, send_sync, max_in_flight=OPENLOOP_IN_FLIGHT)


def uses_asyncio(adapter: Adapter, job: Job) -> bool:
    """Open-loop runs and async-only systems run on an event loop; closed-loop runs of systems
    with a blocking API do not (pre-filling without a bulk API prefers concurrent async sends)."""
    if job.mode == "openloop" or not adapter.sync_api:
        return True
    return job.mode == "prefill" and adapter.bulk_api is None and adapter.async_api


def _read_start_time() -> float:
    print(READY, flush=True)
    return float(sys.stdin.readline())


def _open_loop_report(log: SendLog) -> dict[str, Any]:
    return {
        "sent": len(log.intended),
        "errors": len(log.errors),
        "first_error": log.errors[0] if log.errors else "",
        "lateness_ms": summarize_ms(log.lateness_ms()),
    }


def produce_sync(adapter: Adapter, job: Job) -> dict[str, Any]:
    """Warm up, say READY, and run ``job`` from the start time read from stdin."""
    for _ in range(job.warmup):
        adapter.send("noop", 0.0)
    t0 = _read_start_time()
    time.sleep(max(0.0, t0 - time.time()))
    started = time.time()
    sync_closed_loop(adapter, job)
    return {"sent": job.count, "started": started, "ended": time.time()}


async def produce_async(adapter: Adapter, job: Job) -> dict[str, Any]:
    """The same on an event loop (connected before READY, so the schedule pays no connect)."""
    if adapter.async_api:
        await adapter.aopen()
    try:
        await _warm_up(adapter, job)
        t0 = await asyncio.get_running_loop().run_in_executor(None, _read_start_time)
        if job.mode == "openloop":
            return _open_loop_report(await open_loop(adapter, job, t0))
        await asyncio.sleep(max(0.0, t0 - time.time()))
        started = time.time()
        await async_closed_loop(adapter, job)
        return {"sent": job.count, "started": started, "ended": time.time()}
    finally:
        if adapter.async_api:
            await adapter.aclose()


async def _warm_up(adapter: Adapter, job: Job) -> None:
    if adapter.async_api:
        for _ in range(job.warmup):
            await adapter.asend("noop", 0.0)
        return
    with ThreadPoolExecutor(4) as pool:  # the open-loop thread pool's first threads
        await asyncio.gather(*(threaded(lambda t: adapter.send("noop", t), pool)(0.0) for _ in range(job.warmup)))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", required=True, choices=["single", "bulk", "prefill", "openloop"])
    parser.add_argument("--kind", default="noop", choices=["noop", "io", "cpu", "sleep", "mix"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--stride", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    args = parser.parse_args(argv)
    # Sync clients send from threads: hand the GIL back to the scheduling thread sooner
    # than the default 5 ms, so a busy sender thread does not delay the next send.
    sys.setswitchinterval(0.0005)
    os.environ[URL_ENV] = args.url
    from taskq_bench.systems import load_adapter

    job = Job(args.mode, args.kind, args.count, args.batch, args.rate, args.offset, args.stride, args.warmup)
    adapter = load_adapter(args.system, args.url)
    if adapter.sync_api:
        adapter.open()
    try:
        report = asyncio.run(produce_async(adapter, job)) if uses_asyncio(adapter, job) else produce_sync(adapter, job)
    finally:
        if adapter.sync_api:
            adapter.close()
    print(json.dumps(report), flush=True)


# ---------------------------------------------------------------------------
# The harness side


class ProducerError(RuntimeError):
    """A producer process failed to start or to finish."""


def run_producers(
    python: str,
    system: str,
    url: str,
    jobs: Sequence[Job],
    *,
    lead_s: float = 0.3,
    timeout_s: float = 120.0,
    before_start: Callable[[], None] | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """Start one process per job, start them all at the same moment; (t0, their reports).

    ``before_start`` runs once every producer is READY (warmed up), before the start time is set."""
    env = dict(os.environ, PYTHONPATH=HARNESS_PATH, **{URL_ENV: url})
    argv = [python, "-m", "taskq_bench.producer", "--system", system, "--url", url]
    procs = [_spawn([*argv, *job.argv()], env) for job in jobs]
    try:
        deadline = time.monotonic() + 60
        for proc in procs:
            _expect_ready(proc, deadline)
        if before_start is not None:
            before_start()
        t0 = time.time() + lead_s
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{t0!r}\n")
            proc.stdin.flush()
        return t0, [_report(proc, timeout_s) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    pipe = subprocess.PIPE
    return subprocess.Popen(argv, stdin=pipe, stdout=pipe, stderr=pipe, text=True, env=env, cwd=ROOT)


def _expect_ready(proc: subprocess.Popen[str], deadline: float) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    line = proc.stdout.readline().strip() if ready else ""
    if line != READY:
        proc.kill()
        _, err = proc.communicate()
        raise ProducerError(f"producer did not start ({line or 'no output'}): {err.strip()[-1500:]}")


def _report(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise ProducerError(f"producer still running after {timeout_s:.0f}s") from None
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ProducerError(f"producer exited with {proc.returncode}: {err.strip()[-1500:]}")
    return cast(dict[str, Any], json.loads(lines[-1]))


if __name__ == "__main__":
    main()
