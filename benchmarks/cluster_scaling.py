"""Drain throughput on one redis-server vs a 3-master Redis Cluster, and Redis CPU per task per
node (issue 15). ``make cluster-scaling``; docs/ARCHITECTURE.md, "Scaling out: the figures".

Each run: ``--tasks`` no-op tasks are enqueued (``enqueue_many``, batches of 1,000) into the
run's queues, then one in-process worker (``--concurrency``) drains them; the drain's wall time
gives tasks/s. Around each phase every master's ``INFO cpu`` (used_cpu_sys + used_cpu_user) and
``INFO commandstats`` (usec summed over commands) are read; a half-second idle sample before the
run is each node's background rate (serverCron), subtracted. The client's own CPU (this
process: the worker and the polling) per task is read with ``getrusage``.

Configurations: ``single`` (one server) and ``cluster`` (3 masters, no replicas), each with one
queue, six queues (on the cluster two per master) and one queue sharded K=3
(``configure_queue(q, shards=3)``: three sub-queues on three masters). Every configuration runs
once per round, the order rotated each round; medians and spread (min..max) over the rounds.

On 2 cores a cluster cannot drain faster than one server: the three masters and the client share
the same cores. What it measures is Redis CPU per task per node, from which the scaling model
(printed at the end) predicts tasks/s at 3, 10 and 30 nodes. The machine may be shared: the
load average before and after each run is printed with it.

    .venv/bin/python benchmarks/cluster_scaling.py [--tasks 6000] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

import taskq
from taskq.server import die_with_parent_hook, free_port, ping
from taskq.shards import sub_queues

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' cluster fixture
from clusterhelpers import LocalCluster

BATCH = 1000
IDLE_SAMPLE_S = 0.5
CONFIGS = (
    ("single", "1 queue"),
    ("single", "6 queues"),
    ("single", "sharded K=3"),
    ("cluster", "1 queue"),
    ("cluster", "6 queues"),
    ("cluster", "sharded K=3"),
)


@dataclass
class NodeSample:
    cpu_s: float
    cmd_usec: int


@dataclass
class Run:
    """One configuration's drain, with per-node Redis cost per task (µs)."""

    server: str
    layout: str
    round: int
    tasks: int
    drain_s: float
    tasks_per_s: float
    enqueue_cpu_us: dict[str, float]  # per node, per task, idle subtracted
    drain_cpu_us: dict[str, float]
    drain_cmd_us: dict[str, float]  # INFO commandstats usec per task (command time only)
    owners: list[str]  # the nodes that hold the run's queues
    client_cpu_us: float  # this process (worker + polling) per task, drain phase
    load_before: float
    load_after: float
    per_task_total_cpu_us: float = field(default=0.0)  # enqueue + drain, all nodes


def sample(port: int) -> NodeSample:
    with redis.Redis(port=port, decode_responses=True) as r:
        cpu = r.info("cpu")
        stats = r.info("commandstats")
    return NodeSample(
        float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), sum(int(s["usec"]) for s in stats.values())
    )


def sample_all(ports: list[int]) -> dict[int, NodeSample]:
    return {p: sample(p) for p in ports}


def per_task_us(
    before: dict[int, NodeSample], after: dict[int, NodeSample], idle: dict[int, float], seconds: float, tasks: int
) -> tuple[dict[str, float], dict[str, float]]:
    cpu = {str(p): max(0.0, after[p].cpu_s - before[p].cpu_s - idle[p] * seconds) / tasks * 1e6 for p in before}
    cmd = {str(p): (after[p].cmd_usec - before[p].cmd_usec) / tasks for p in before}
    return cpu, cmd


def idle_rates(ports: list[int]) -> dict[int, float]:
    """Each node's CPU seconds per second while nothing runs (serverCron, replication pings)."""
    first = sample_all(ports)
    time.sleep(IDLE_SAMPLE_S)
    last = sample_all(ports)
    return {p: max(0.0, last[p].cpu_s - first[p].cpu_s) / IDLE_SAMPLE_S for p in ports}


def masters_of(tq: taskq.TaskQueue, queues: list[str]) -> list[str]:
    """The ports of the masters holding ``queues`` (one server: its own)."""
    client: Any = tq.redis
    if not hasattr(client, "get_node_from_key"):
        return [str(client.connection_pool.connection_kwargs["port"])]
    return sorted({str(client.get_node_from_key(tq.ops.queue_keys(q).queued).port) for q in queues})


def spread_queues(tq: taskq.TaskQueue, count: int) -> list[str]:
    """``count`` queue names, spread evenly over the masters (round-robin by owner)."""
    client: Any = tq.redis
    if not hasattr(client, "get_node_from_key") or count < len(client.get_primaries()):
        return [f"s{i}" for i in range(count)]
    owners: dict[str, list[str]] = {n.name: [] for n in client.get_primaries()}
    per = count // len(owners)
    for i in range(10_000):
        name = f"s{i}"
        bucket = owners[client.get_node_from_key(tq.ops.queue_keys(name).queued).name]
        if len(bucket) < per:
            bucket.append(name)
        if sum(map(len, owners.values())) == count:
            break
    return [q for qs in owners.values() for q in qs]


def drain_run(url: str, ports: list[int], server: str, layout: str, round_: int, args: argparse.Namespace) -> Run:
    with taskq.TaskQueue(url) as tq:

        @tq.task(name="noop")
        async def noop() -> None:
            return None

        if layout == "sharded K=3":
            queues = ["hot"]
            tq.configure_queue("hot", shards=3)
            owners = masters_of(tq, list(sub_queues("hot", 3)))
        else:
            queues = spread_queues(tq, 1 if layout == "1 queue" else 6)
            owners = masters_of(tq, queues)
        requests = [{"name": "noop", "queue": queues[n % len(queues)]} for n in range(args.tasks)]
        load_before = os.getloadavg()[0]
        idle = idle_rates(ports)
        before = sample_all(ports)
        started = time.perf_counter()
        for start in range(0, args.tasks, BATCH):
            tq.enqueue_many(requests[start : start + BATCH])
        enqueue_s = time.perf_counter() - started
        enqueued = sample_all(ports)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        client_before = usage.ru_utime + usage.ru_stime
        started = time.perf_counter()
        worker = tq.start_worker(queues=queues, concurrency=args.concurrency)
        try:
            while sum(tq.stats(q).pending for q in queues) > 0:
                time.sleep(0.05)
            drain_s = time.perf_counter() - started
        finally:
            worker.stop(grace_s=5)
        drained = sample_all(ports)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu_us = (usage.ru_utime + usage.ru_stime - client_before) / args.tasks * 1e6
        enqueue_cpu, _ = per_task_us(before, enqueued, idle, enqueue_s, args.tasks)
        drain_cpu, drain_cmd = per_task_us(enqueued, drained, idle, drain_s, args.tasks)
        run = Run(
            server=server,
            layout=layout,
            round=round_,
            tasks=args.tasks,
            drain_s=round(drain_s, 3),
            tasks_per_s=round(args.tasks / drain_s, 1),
            enqueue_cpu_us={k: round(v, 1) for k, v in enqueue_cpu.items()},
            drain_cpu_us={k: round(v, 1) for k, v in drain_cpu.items()},
            drain_cmd_us={k: round(v, 1) for k, v in drain_cmd.items()},
            owners=owners,
            client_cpu_us=round(client_cpu_us, 1),
            load_before=round(load_before, 2),
            load_after=round(os.getloadavg()[0], 2),
        )
        run.per_task_total_cpu_us = round(sum(enqueue_cpu.values()) + sum(drain_cpu.values()), 1)
        for port in ports:  # the next run starts from empty servers (scripts stay loaded)
            with redis.Redis(port=port) as r:
                r.flushall()
        return run


def start_single() -> tuple[subprocess.Popen[bytes], int, str]:
    binary = shutil.which("redis-server") or "redis-server"
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="taskq-scaling-")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, preexec_fn=die_with_parent_hook())
    while not ping("127.0.0.1", port):
        time.sleep(0.05)
    return proc, port, f"redis://127.0.0.1:{port}/0"


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}..{max(values):.1f})"


def summarize(runs: list[Run]) -> dict[str, Any]:
    """Medians and spread per configuration, and the scaling model from the cluster runs."""
    table: dict[str, Any] = {}
    for server, layout in CONFIGS:
        rows = [r for r in runs if (r.server, r.layout) == (server, layout)]
        if not rows:
            continue
        owner_cpu = [sum(r.drain_cpu_us[o] + r.enqueue_cpu_us[o] for o in r.owners) for r in rows]
        table[f"{server}, {layout}"] = {
            "tasks_per_s": spread([r.tasks_per_s for r in rows]),
            "redis_cpu_us_per_task_all_nodes": spread([r.per_task_total_cpu_us for r in rows]),
            "redis_cpu_us_per_task_on_queue_nodes": spread(owner_cpu),
            "drain_cmd_us_per_task_all_nodes": spread([sum(r.drain_cmd_us.values()) for r in rows]),
            "client_cpu_us_per_task": spread([r.client_cpu_us for r in rows]),
            "load": f"{min(r.load_before for r in rows):.1f}..{max(r.load_after for r in rows):.1f}",
        }
    return table


def model(runs: list[Run]) -> dict[str, Any]:
    """Tasks/s at N nodes from the cluster's measured Redis CPU per task.

    ``c``: Redis CPU per task summed over the nodes (enqueue + claim + complete), median of the
    six-queue cluster runs. ``f``: the part of it not on the queue's own master (the worker
    registry and heartbeats, which live in one slot; the cluster-wide reads), from the one-queue
    cluster runs: the CPU of the two masters without the queue over all three. With queues spread
    evenly over N masters the busiest master is the one holding the global keys, at
    c * (f + (1 - f) / N) CPU seconds per task: one core each gives T(N) = 1 / (c * (f + (1-f)/N)).
    One queue (not sharded) stays on one master: T = 1 / (its master's CPU per task, from the
    one-queue runs) whatever N; sharded K ways, K masters share it. ``k``: client CPU per
    task, so a T(N) needs T(N) * k cores of workers (a worker process is one core)."""
    six = [r for r in runs if (r.server, r.layout) == ("cluster", "6 queues")]
    one = [r for r in runs if (r.server, r.layout) == ("cluster", "1 queue")]
    if not six or not one:
        return {}
    c_us = statistics.median(r.per_task_total_cpu_us for r in six)
    shares = []
    for r in one:
        total = sum(r.drain_cpu_us.values()) + sum(r.enqueue_cpu_us.values())
        elsewhere = sum(r.drain_cpu_us[p] + r.enqueue_cpu_us[p] for p in r.drain_cpu_us if p not in r.owners)
        shares.append(elsewhere / total if total else 0.0)
    f = statistics.median(shares)
    one_queue_us = statistics.median(
        sum(r.drain_cpu_us[o] + r.enqueue_cpu_us[o] for o in r.owners) for r in one
    )  # the queue's master's CPU per task: one unsharded queue is bounded by it
    k_us = statistics.median(r.client_cpu_us for r in six)
    predicted = {}
    for n in (3, 10, 30):
        t = 1e6 / (c_us * (f + (1 - f) / n))
        predicted[str(n)] = {"tasks_per_s": round(t), "client_cores": round(t * k_us / 1e6, 1)}
    return {
        "c_redis_cpu_us_per_task": round(c_us, 1),
        "f_cross_node_fraction": round(f, 3),
        "f_range": [round(min(shares), 3), round(max(shares), 3)],
        "k_client_cpu_us_per_task": round(k_us, 1),
        "per_node_tasks_per_s": round(1e6 / c_us),
        "one_unsharded_queue_tasks_per_s": round(1e6 / one_queue_us),
        "predicted": predicted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    args = parser.parse_args()
    configs = list(CONFIGS)
    proc, single_port, single_url = start_single()
    cluster = LocalCluster(masters=3).start()
    runs: list[Run] = []
    try:
        targets = {"single": (single_url, [single_port]), "cluster": (cluster.url, cluster.masters())}
        for round_ in range(args.rounds):
            shift = round_ % len(configs)
            for server, layout in configs[shift:] + configs[:shift]:
                url, ports = targets[server]
                run = drain_run(url, ports, server, layout, round_, args)
                print(json.dumps(asdict(run)), flush=True)
                runs.append(run)
    finally:
        cluster.stop()
        proc.terminate()
        proc.wait()
    summary = {"configs": summarize(runs), "model": model(runs), "cores": os.cpu_count()}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"runs": [asdict(r) for r in runs], "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
