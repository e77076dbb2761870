"""What leases, retries and telemetry cost, measured (issue 14): Redis CPU per task per feature,
and the drain rate with telemetry on and off.

    .venv/bin/python benchmarks/feature_cost.py [--tasks 5000] [--rounds 3] [--json out.json]

Starts its own redis-server on a free port. Each round (modes rotated from round to round)
drains ``--tasks`` no-op tasks (queued with ``enqueue_many`` in batches of 100, run by one
in-process :class:`taskq.worker.Worker`, concurrency 100) in three modes: telemetry on (the
defaults), telemetry off (``TaskQueue(events=False, telemetry=False)``), and telemetry on with
every task failing once and retried at once (``max_retries=1``, zero backoff). Before each
drain ``CONFIG RESETSTAT``; after it ``INFO commandstats`` gives calls and usec per command,
commands run inside Lua scripts included, so per task and per command: what Redis spent.

Which feature a command serves is decided by the command and the key it touches (and, for the
queue's ``meta`` hash, the field), from one extra drain watched with ``MONITOR`` (never in the
timed rounds: MONITOR costs Redis CPU). Nothing depends on which script issues a command, so
the attribution follows the scripts as they change:

* leases: the ``running`` set, the ``lease_seq`` counter of ``meta`` (lease tokens), the worker
  registry and heartbeats (``taskq:workers``, ``taskq:worker:<id>``);
* telemetry: ``stats``, ``events`` (XADD), ``depth``, ``hist:*`` (BITFIELD), the window
  checkpoints ``ckpt:*`` and ``windows``, and ``meta``'s ``ckpt_s``;
* core: everything else (the ``queued`` and ``scheduled`` sets, the task's hash, ``meta``'s FIFO
  clock, rate-limit and config reads, the wake-up PUBLISH, TIME). The lease token, ``attempts``
  and ``max_retries`` are fields of the task's hash written by the core's HSET: on the success
  path leases and retries add fields to it, not commands, so their cost there is not split out;
* Lua: what EVALSHA took beyond the commands it ran (the interpreter, the scripts' own logic,
  telemetry's buffering in Lua included): not split by feature.

Each command's usec is split between features in proportion to its MONITOR calls (a ZADD on
``running`` and one on ``queued`` are taken to cost the same). Retries cannot be turned off, and
their success-path cost is fields (above), so they are measured by their fail path: the retry
mode's Redis usec per task minus the telemetry-on mode's (one retry per task). Leases cannot be
turned off: attributed by their commands only. Telemetry is both attributed and measured end to
end (on vs off: Redis CPU per task from INFO cpu, and the drain rate). Every drain's load is
recorded; one during which other processes used more than 10% of the machine is flagged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from taskq_bench.commandstats import SCRIPT_COMMANDS
from taskq_bench.fairness import measured_load, rotated

import taskq
from taskq.backoff import Backoff
from taskq.server import EmbeddedServer
from taskq.worker import Worker

QUEUE = "fc"
MODES = ("telemetry on", "telemetry off", "retry once")
SETTINGS: dict[str, dict[str, Any]] = {
    "telemetry on": {},
    "telemetry off": {"events": False, "telemetry": False},
    "retry once": {},
}
FEATURES = ("core", "leases", "telemetry", "Lua")
TELEMETRY_ROLES = {"stats", "events", "depth", "hist", "ckpt", "windows"}
CONCURRENCY = 100
#: This script's own commands around a drain (not the system's).
OWN_COMMANDS = ("info", "config|resetstat", "flushall")
BATCH = 100


def feature_of(command: str, key: str, first_arg: str) -> str:
    """The feature a command serves, from its name, its key and (``meta``) its first field."""
    if key.startswith("taskq:worker"):  # taskq:workers, taskq:worker:<id>
        return "leases"
    _, _, rest = key.partition("}:")
    role = rest.split(":", 1)[0]
    if role in TELEMETRY_ROLES:
        return "telemetry"
    if role == "running":
        return "leases"
    if role == "meta":
        return {"lease_seq": "leases", "ckpt_s": "telemetry"}.get(first_arg, "core")
    return "core"


def key_role(key: str) -> str:
    """``taskq:{fc}:t:fc:0193…`` -> ``t``; ``taskq:worker:<id>`` -> ``worker``; ``taskq:queues`` -> ``queues``."""
    _, _, rest = key.partition("}:")
    return (rest or key.partition(":")[2] or key).split(":", 1)[0]


# ---------------------------------------------------------------------------- one drain


@dataclass
class Drain:
    mode: str
    tasks: int
    per_s: float
    redis_cpu_us: float
    """INFO cpu (user + sys) per task."""
    commands: dict[str, dict[str, float]]
    """INFO commandstats: command -> calls and usec, per task."""
    load: list[Any] = field(default_factory=list)
    loaded: bool = False


class Counted:
    """Successes counted in this process (no Redis polling), and when the first and last ran."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.first, self.last = total, 0, 0.0, 0.0
        self.done = threading.Event()
        self.failed: set[int] = set()

    def success(self) -> None:
        self.n += 1
        now = time.perf_counter()
        if self.n == 1:
            self.first = now
        if self.n == self.total:
            self.last = now
            self.done.set()


def make_app(url: str, mode: str, counted: Counted) -> taskq.TaskQueue:
    tq = taskq.TaskQueue(url, **SETTINGS[mode])

    @tq.task(queue=QUEUE, name="noop")
    async def noop(i: int) -> None:
        counted.success()

    @tq.task(queue=QUEUE, name="flaky", max_retries=1, backoff=Backoff(0.0, 0.0, 0.0, 0.0))
    async def flaky(i: int) -> None:
        if i not in counted.failed:
            counted.failed.add(i)
            raise RuntimeError("fails once, on purpose")
        counted.success()

    return tq


def run_worker(tq: taskq.TaskQueue, counted: Counted) -> None:
    worker = Worker(tq, queues=[QUEUE], concurrency=CONCURRENCY)

    async def main() -> None:
        running = asyncio.create_task(worker.run())
        while not counted.done.is_set():
            if running.done():
                running.result()
                raise RuntimeError("the worker stopped before the drain was done")
            await asyncio.sleep(0.005)
        worker.request_stop(10.0)  # graceful: in-flight completions finish
        await running

    asyncio.run(main())


def commandstats(client: redis.Redis) -> dict[str, dict[str, float]]:
    info: Any = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): {"calls": float(v["calls"]), "usec": float(v["usec"])}
            for name, v in info.items()}  # fmt: skip


def redis_cpu_s(client: redis.Redis) -> float:
    info: Any = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def enqueue_all(tq: taskq.TaskQueue, name: str, tasks: int) -> None:
    for start in range(0, tasks, BATCH):
        tq.enqueue_many([{"name": name, "args": [i]} for i in range(start, min(tasks, start + BATCH))])


def drain(url: str, mode: str, tasks: int) -> Drain:
    """Enqueue and drain ``tasks`` tasks in ``mode``: Redis's figures cover both; the rate, the drain."""
    counted = Counted(tasks)
    tq = make_app(url, mode, counted)
    with redis.Redis.from_url(url) as client:
        client.flushall()
        client.config_resetstat()
        cpu = redis_cpu_s(client)
        with measured_load() as load:
            enqueue_all(tq, task_name(mode), tasks)
            run_worker(tq, counted)
        cpu = redis_cpu_s(client) - cpu
        stats = commandstats(client)
    tq.close()
    per_task = {c: {k: v / tasks for k, v in s.items()} for c, s in stats.items() if c not in OWN_COMMANDS}
    rate = round(tasks / max(counted.last - counted.first, 1e-6))
    return Drain(mode, tasks, rate, round(cpu / tasks * 1e6, 2), per_task, load.as_list(), load.loaded)


def task_name(mode: str) -> str:
    return "flaky" if mode == "retry once" else "noop"


# ---------------------------------------------------------------------------- attribution


@contextmanager
def monitored(url: str) -> Iterator[Counter[tuple[str, str, str, str]]]:
    """Count (command, feature, key role, source) of every command Redis runs in the block."""
    seen: Counter[tuple[str, str, str, str]] = Counter()
    stop = threading.Event()
    client = redis.Redis.from_url(url)
    ready = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            while not stop.is_set():
                line = monitor.next_command()
                parts = line["command"].split(" ")
                command = parts[0].lower()
                if command == "echo" and parts[1:] == ["feature-cost-end"]:
                    return
                key, arg = ("", "") if command.startswith("eval") else [*parts, "", ""][1:3]
                source = "script" if line["client_type"] == "lua" else "client"
                feature = "Lua" if command.startswith("eval") else feature_of(command, key, arg)
                seen[(command, feature, key_role(key) if key else "-", source)] += 1

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield seen
    finally:
        stop.set()
        with redis.Redis.from_url(url) as other:
            other.echo("feature-cost-end")
        thread.join(10)
        client.close()


def attribution(url: str, mode: str, tasks: int) -> Counter[tuple[str, str, str, str]]:
    """One drain of ``tasks`` in ``mode`` watched with MONITOR (enqueue included)."""
    counted = Counted(tasks)
    tq = make_app(url, mode, counted)
    with redis.Redis.from_url(url) as client:
        client.flushall()
    with monitored(url) as seen:
        enqueue_all(tq, task_name(mode), tasks)
        run_worker(tq, counted)
    tq.close()
    for key in [k for k in seen if k[0] in OWN_COMMANDS]:
        del seen[key]
    return seen


def split_by_feature(
    commands: dict[str, dict[str, float]], seen: Counter[tuple[str, str, str, str]]
) -> dict[str, dict[str, float]]:
    """Redis usec per task per feature (and calls), each command's usec split by its MONITOR
    calls; EVALSHA's usec beyond the commands its scripts ran goes to "Lua"."""
    calls_of: dict[str, Counter[str]] = defaultdict(Counter)
    script_share: dict[str, float] = {}
    for (command, feature, _, _source), n in seen.items():
        calls_of[command][feature] += n
    for command in calls_of:
        total = sum(n for (c, _, _, _), n in seen.items() if c == command)
        script_share[command] = sum(n for (c, _, _, s), n in seen.items() if c == command and s == "script") / total
    out = {f: {"usec": 0.0, "calls": 0.0} for f in FEATURES}
    inner = 0.0
    for command, figures in commands.items():
        if command in (*SCRIPT_COMMANDS, "eval"):
            continue
        split = calls_of.get(command) or Counter({"core": 1})
        total = sum(split.values())
        for feature, n in split.items():
            out[feature]["usec"] += figures["usec"] * n / total
            out[feature]["calls"] += figures["calls"] * n / total
        inner += figures["usec"] * script_share.get(command, 0.0)
    calls = [commands.get(c, {"usec": 0.0, "calls": 0.0}) for c in SCRIPT_COMMANDS]
    scripts = {k: sum(c[k] for c in calls) for k in ("usec", "calls")}
    out["Lua"] = {"usec": max(0.0, scripts["usec"] - inner), "calls": scripts["calls"]}
    return out


# ---------------------------------------------------------------------------- report


def med(values: list[float]) -> float:
    return round(statistics.median(values), 2)


Seen = Counter[tuple[str, str, str, str]]


def detail(runs: list[Drain], seen: Seen, monitor_tasks: int) -> list[list[Any]]:
    """Per (command, key role, feature), telemetry on: MONITOR calls per task, and the command's
    median usec per task split in proportion."""
    rows = []
    for (command, feature, role, source), n in seen.most_common():
        total = sum(m for (c, _, _, _), m in seen.items() if c == command)
        usec = med([r.commands.get(command, {}).get("usec", 0.0) * n / total for r in runs])
        rows.append([command, role, source, feature, round(n / monitor_tasks, 3), usec])
    return sorted(rows, key=lambda row: -row[5])


def extra_calls(more: list[Drain], base: list[Drain]) -> list[tuple[str, float]]:
    """Median calls per task of each command in ``more`` minus in ``base``, most first."""
    names = {c for r in more + base for c in r.commands}
    calls = {c: med([r.commands.get(c, {}).get("calls", 0.0) for r in more])
             - med([r.commands.get(c, {}).get("calls", 0.0) for r in base]) for c in names}  # fmt: skip
    return sorted(calls.items(), key=lambda item: -item[1])


def report(runs: list[Drain], seen: dict[str, Seen], tasks: int, rounds: int, monitor_tasks: int) -> dict[str, Any]:
    by_mode = {m: [r for r in runs if r.mode == m] for m in MODES}
    split = {m: [split_by_feature(r.commands, seen[m]) for r in rs] for m, rs in by_mode.items()}
    us = {m: {f: med([x[f]["usec"] for x in split[m]]) for f in FEATURES} for m in MODES}
    calls = {m: {f: med([x[f]["calls"] for x in split[m]]) for f in FEATURES} for m in MODES}
    total = {m: med([sum(x[f]["usec"] for f in FEATURES) for x in split[m]]) for m in MODES}
    cpu = {m: med([r.redis_cpu_us for r in rs]) for m, rs in by_mode.items()}
    rates = {m: [r.per_s for r in rs] for m, rs in by_mode.items()}
    flagged = [f"{r.mode} ({r.load[3]} s outside over {r.load[5]} s)" for r in runs if r.loaded]
    on, off, retry = "telemetry on", "telemetry off", "retry once"
    print(
        f"\nRedis time per task (µs; median of {rounds} rounds; {tasks:,} no-op tasks enqueued in batches of "
        f"{BATCH} and drained by one in-process worker, concurrency {CONCURRENCY}):\n"
    )
    print("| feature | telemetry on: calls/task | µs/task | telemetry off: µs/task | how it was got |")
    print("|---|---|---|---|---|")
    how = {
        "core": "its commands (MONITOR: command, key, field), INFO commandstats usec",
        "leases": "its commands: `running` set, `lease_seq`, worker registry/heartbeats (cannot be turned off)",
        "telemetry": "its commands: stats, events XADD, depth, hist BITFIELD, ckpt, windows",
        "Lua": "EVALSHA usec beyond the commands the scripts ran: not split by feature",
    }
    for f in ("core", "leases", "telemetry", "Lua"):
        print(f"| {f} | {calls[on][f]:.2f} | {us[on][f]:.2f} | {us[off][f]:.2f} | {how[f]} |")
    print(f"| all (commandstats) | | {total[on]:.2f} | {total[off]:.2f} | sum of the above (time in commands) |")
    print(f"| Redis CPU (INFO cpu) | | {cpu[on]:.2f} | {cpu[off]:.2f} | getrusage: commands, I/O, event loop |")
    print(f"| **telemetry, end to end** | | {cpu[on] - cpu[off]:.2f} | | INFO cpu, on minus off (commandstats: "
          f"{total[on] - total[off]:.2f}): its commands and its Lua |")  # fmt: skip
    print(f"| **retries, per retry** | | {cpu[retry] - cpu[on]:.2f} | | INFO cpu, every task failing once minus "
          f"none (commandstats: {total[retry] - total[on]:.2f}); no retry commands on the success path |")  # fmt: skip
    extra = extra_calls(by_mode[retry], by_mode[on])
    print("\nCommands a retry adds, per retried task: " + ", ".join(f"{c} {n:.2f}" for c, n in extra if n >= 0.05))
    print("\nDrain rate, tasks/s (first task's start to last task's finish), per round:")
    for mode in (on, off):
        print(f"  {mode:<14} {', '.join(f'{r:,}' for r in rates[mode])}  median {statistics.median(rates[mode]):,.0f}")
    cost = 1 - statistics.median(rates[on]) / statistics.median(rates[off])
    print(f"  telemetry on is {cost:.1%} slower than off (medians)")
    print(f"  flagged, other processes used > 10% of the machine: {'; '.join(flagged) or 'none'}")
    loads = [r.load for r in runs if r.load]
    if loads:
        print(f"  1-minute load average: {loads[0][0]} before the first drain, {loads[-1][1]} after the last; "
              f"{loads[0][2]} cores")  # fmt: skip
    rows = detail(by_mode[on], seen[on], monitor_tasks)
    print(
        "\nTelemetry on, per command and key (calls/task from MONITOR, µs/task split by calls; evalsha: whole scripts):"
    )
    for row in rows[:16]:
        print(f"  {row[0]:<16} {row[1]:<10} {row[2]:<7} {row[3]:<10} {row[4]:>7.3f} {row[5]:>7.2f}")
    return {"usec_per_task": us, "calls_per_task": calls, "commandstats_usec_per_task": total,
            "redis_cpu_usec_per_task": cpu, "telemetry_end_to_end_usec": round(total[on] - total[off], 2),
            "retry_usec": round(total[retry] - total[on], 2), "retry_cpu_usec": round(cpu[retry] - cpu[on], 2),
            "telemetry_cpu_usec": round(cpu[on] - cpu[off], 2), "retry_extra_calls": extra, "rates": rates,
            "telemetry_rate_cost": round(cost, 4), "flagged": flagged, "detail_telemetry_on": rows,
            "monitor": {m: [[*k, n] for k, n in c.most_common()] for m, c in seen.items()},
            "runs": [asdict(r) for r in runs]}  # fmt: skip


def measure(tasks: int, rounds: int, monitor_tasks: int) -> dict[str, Any]:
    """The attribution drains, then ``rounds`` rounds of every mode (rotated); the report's figures."""
    with EmbeddedServer(kind="redis-server") as server:
        seen = {mode: attribution(server.url, mode, monitor_tasks) for mode in MODES}
        runs: list[Drain] = []
        for number in range(1, rounds + 1):
            for mode in rotated(MODES, number):
                runs.append(drain(server.url, mode, tasks))
                run = runs[-1]
                print(f"round {number} {mode:<14} {run.per_s:>7,}/s  redis CPU {run.redis_cpu_us} µs/task"
                      f"{'  (flagged: outside load)' if run.loaded else ''}", flush=True)  # fmt: skip
        return report(runs, seen, tasks, rounds, monitor_tasks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5000, help="no-op tasks per drain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--monitor-tasks", type=int, default=500, help="tasks of each MONITOR-watched drain")
    parser.add_argument("--json", dest="json_path", help="also write every figure here")
    args = parser.parse_args(argv)
    if min(args.tasks, args.rounds, args.monitor_tasks) < 1:
        parser.error("--tasks, --rounds and --monitor-tasks must be at least 1")
    quiet = logging.getLogger("taskq")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # not a line per failed attempt of the retry mode
    try:
        figures = measure(args.tasks, args.rounds, args.monitor_tasks)
    finally:
        quiet.setLevel(level)
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=1)


if __name__ == "__main__":
    main()
