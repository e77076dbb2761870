"""Benchmark of the HTTP API on loopback (not a test): ``python -m taskq_api.bench``.

Starts a Redis (or uses ``--redis-url``) and ``taskq serve`` with one uvicorn worker, then
measures with an httpx load generator: single submit requests/s, bulk submit tasks/s, get
requests/s; and WebSocket fan-out to N clients at 4 Hz: update lag P50/P99 (receive time
minus the snapshot's server time), server CPU, and Redis commands per snapshot tick (from
INFO commandstats), for two client counts so you can see it does not grow with clients.

The load generator is Python on the same machine, so on a small machine it competes with the
server for CPU: the figures are a lower bound of what the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx
import redis
import websockets

from taskq import EmbeddedServer
from taskq_api.settings import API

SNAPSHOT_PREFIX = '{"type":"snapshot","snapshot":{"taken_ms":'
TAKEN_MS = re.compile(r'"taken_ms":(\d+)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_calls(r: redis.Redis) -> int:
    stats: dict[str, Any] = r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


@dataclass(frozen=True)
class Call:
    """One request of a load loop, and how many units (requests or tasks) it counts for."""

    method: str
    path: str
    body: bytes = b""
    units: int = 1

    def encode(self) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(self.body)}\r\n"
        if self.body:
            head += "Content-Type: application/json\r\n"
        return head.encode() + b"\r\n" + self.body


async def closed_loop(seconds: float, concurrency: int, call: Call, port: int) -> float:
    """Units per second done by ``concurrency`` keep-alive connections, each sending ``call``
    back to back. A minimal HTTP/1.1 client on asyncio streams: httpx's async pool spends far
    more CPU per request than the server does, and would measure itself."""
    request = call.encode()
    done = 0

    async def loop(deadline: float) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                if status >= 400:
                    raise RuntimeError(f"{call.method} {call.path}: HTTP {status}")
                done += call.units
        finally:
            writer.close()

    await loop(time.perf_counter() + 0.5)  # warm up
    done = 0
    started = time.perf_counter()
    await asyncio.gather(*(loop(started + seconds) for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def submit_call() -> Call:
    return Call("POST", f"{API}/tasks", json.dumps({"name": "noop", "args": [1]}).encode())


def bulk_call(size: int) -> Call:
    body = json.dumps({"tasks": [{"name": "noop", "args": [i]} for i in range(size)]}).encode()
    return Call("POST", f"{API}/tasks/bulk", body, units=size)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def fan_out(url: str, clients: int, hz: float, seconds: float, server_pid: int, r: redis.Redis) -> dict[str, Any]:
    lags_ms: list[float] = []
    ws_url = url.replace("http://", "ws://") + f"{API}/ws"
    stop = asyncio.Event()
    ready = 0

    async def client() -> None:
        nonlocal ready
        async with websockets.connect(ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"queues": ["bench"], "hz": hz}))
            ready += 1
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                if (
                    measuring and isinstance(raw, str) and raw.startswith(SNAPSHOT_PREFIX)
                ):  # not parsed: that times the client
                    taken = TAKEN_MS.search(raw)
                    assert taken is not None
                    lags_ms.append(time.time() * 1000 - int(taken.group(1)))

    measuring = False
    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    while ready < clients:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    calls0, cpu0, t0 = redis_calls(r), cpu_s(server_pid), time.perf_counter()
    measuring = True
    await asyncio.sleep(seconds)
    measuring = False
    calls1, cpu1, t1 = redis_calls(r), cpu_s(server_pid), time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    ticks = (t1 - t0) * hz
    return {
        "clients": clients,
        "hz": hz,
        "updates": len(lags_ms),
        "updates_per_client_s": round(len(lags_ms) / clients / (t1 - t0), 2),
        "lag_p50_ms": round(percentile(lags_ms, 0.5), 1),
        "lag_p99_ms": round(percentile(lags_ms, 0.99), 1),
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "redis_commands_per_tick": round((calls1 - calls0) / ticks, 2),
    }


def start_server(redis_url: str, log_path: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "TASKQ_REDIS_URL": redis_url}
    cmd = [sys.executable, "-m", "taskq.cli", "serve", "taskq_api.bench_app:tq", "--insecure-local"]
    with open(log_path, "wb") as log:  # the server's JSON request log (the child keeps its own handle)
        proc = subprocess.Popen([*cmd, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("taskq serve did not start")
        time.sleep(0.1)


async def measured(seconds: float, concurrency: int, call: Call, port: int, server_pid: int) -> dict[str, float]:
    """Units per second, and the server's CPU (percent of one core) meanwhile."""
    cpu0, t0 = cpu_s(server_pid), time.perf_counter()
    rate = await closed_loop(seconds, concurrency, call, port)
    cpu = 100 * (cpu_s(server_pid) - cpu0) / (time.perf_counter() - t0)
    return {"per_s": round(rate), "server_cpu_pct": round(cpu, 1)}


async def run(args: argparse.Namespace, url: str, server_pid: int, r: redis.Redis) -> dict[str, Any]:
    port = int(url.rsplit(":", 1)[1])
    results: dict[str, Any] = {}
    results["submit_requests"] = await measured(args.seconds, args.concurrency, submit_call(), port, server_pid)
    r.delete(*list(r.scan_iter("taskq:{bench}:*")) or ["-"])
    results["bulk_tasks"] = await measured(args.seconds, 2, bulk_call(args.bulk_size), port, server_pid)
    r.delete(*list(r.scan_iter("taskq:{bench}:*")) or ["-"])
    async with httpx.AsyncClient(base_url=url) as client:
        task_id = (await client.post(f"{API}/tasks", json={"name": "noop"})).json()["id"]
    get_call = Call("GET", f"{API}/tasks/{task_id}")
    results["get_requests"] = await measured(args.seconds, args.concurrency, get_call, port, server_pid)
    results["fan_out"] = [
        await fan_out(url, n, args.hz, args.seconds, server_pid, r) for n in (args.clients // 10, args.clients)
    ]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", help="an existing Redis (default: start one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (submit, get)")
    parser.add_argument("--bulk-size", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=200, help="WebSocket clients")
    parser.add_argument("--hz", type=float, default=4.0)
    parser.add_argument("--log", default=os.devnull, help="where the server's request log goes")
    args = parser.parse_args()
    embedded = None
    redis_url = args.redis_url
    if redis_url is None:
        embedded = EmbeddedServer().start()
        redis_url = embedded.url
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    proc, url = start_server(redis_url, args.log)
    try:
        results = asyncio.run(run(args, url, proc.pid, r))
        results["server"] = {"uvicorn_workers": 1, "redis": redis_url.rsplit("@", 1)[-1]}
        print(json.dumps(results, indent=2))
    finally:
        proc.terminate()
        proc.wait(30)
        r.close()
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    main()
