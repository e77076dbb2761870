"""What each part of a single enqueue costs the server (issue 14), beside what a bare LPUSH costs.

The full ``enqueue`` function (one task, no delay, no idempotency key, a queue that is not
empty: the common call) is measured, then copies of the library with one part taken out of it
(each part is a text edit of the generated library, checked to apply), then reference calls: an
empty function with no arguments and with the enqueue's 15 keys and 20 arguments, ``TIME``, and
``LPUSH`` of a 200-byte value (what Huey's enqueue sends). A part's cost is the full enqueue
minus the copy without it. The once-a-second window checkpoint is put off (a checkpoint second
far ahead), so every call is the common one.

Two counters: ``--callgrind`` runs the server under valgrind and counts the instructions it runs
per call (everything: reading the command, the script, the reply; the same on a busy machine),
the default reads ``usec_per_call`` from INFO commandstats (µs inside the server: wall time, so
a busy machine inflates it; each figure is the median of ``--rounds`` rounds, the order of the
variants rotated each round).

    .venv/bin/python benchmarks/enqueue_parts.py [--calls 2000] [--rounds 3] [--callgrind]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from taskq_bench import private_redis
from taskq_bench.fairness import rotated

import taskq
from taskq.scripts import library
from taskq.server import free_port

QUEUE = "parts"
FULL = "full enqueue"

#: Each part of the enqueue function: (the text that does it in the generated library, what
#: replaces it). Parts in lib/common.lua's helpers change every function of the copy; only its
#: enqueue is called.
PARTS: dict[str, tuple[str, str]] = {
    "record (HSET of the task hash)": ("redis.call('HSET', key, unpack(rec))", ""),
    "queue order (ZADD queued)": ("redis.call('ZADD', batch.queued, unpack(batch.members))", ""),
    "event (XADD, through the telemetry context)": ("tel_event(T, 'enqueued', id, priority, '0', nil)", ""),
    "enqueued counter (HINCRBY stats)": ("tel_count(T, 'enqueued', created)", ""),
    "depth per priority (HINCRBY depth)": ("  tel_depth(batch.tel, priority, 1)\n  return score", "  return score"),
    "FIFO clock write (HSET meta)": ("  redis.call('HSET', batch.meta, 'clock', clock)\n", ""),
    "queue was empty? (ZCARD)": (
        "local was_empty = redis.call('ZCARD', batch.queued) == 0",
        "local was_empty = false",
    ),
    "queue settings (HMGET config)": (
        "local config = redis.call('HMGET', config_key, 'aging_us', 'default_priority')",
        "local config = {}",
    ),
    "checkpoint and clock read (HMGET meta)": (
        "local m = redis.call('HMGET', T.meta, 'ckpt_s', 'clock')",
        "local m = {'99999999999', '0'}",
    ),
    "server time (TIME)": ("local t = redis.call('TIME')", "local t = {'1765000000', '123456'}"),
}
#: Not a part: everything the function does after reading the time, all at once.
ALL_AFTER_TIME = ("local now_text = fmt(now_ms)", "do return {ARGV[6], 1} end local now_text = fmt(now_ms)")


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    library: str | None  # source to load (None: a reference call on the stock library)
    command: tuple[Any, ...]  # the call, its task id (if any) a {} placeholder
    stat: str  # the commandstats entry that counts it


def copy_without(source: str, lib_name: str, tag: str, edits: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The library source renamed to ``tag`` with ``edits`` made; (source, its enqueue function)."""
    out = source.replace(lib_name, tag)
    for old, new in edits:
        if old not in out:
            raise SystemExit(f"enqueue_parts: {old!r} is not in the library any more: update PARTS")
        out = out.replace(old, new)
    return out, f"{tag}_enqueue"


def enqueue_call(function: str) -> tuple[tuple[Any, ...], str]:
    """FCALL of ``function`` with the keys and arguments a blocking ``tq.enqueue("noop", [0.0],
    queue=QUEUE, force=True)`` sends (taskq.ops), the task id a placeholder; and the queue's
    meta key (where the window checkpoint's second is kept)."""
    with taskq.TaskQueue("redis://127.0.0.1:1/0") as tq:  # builds the call; never connects
        spec = tq._spec("noop", [0.0], queue=QUEUE, force=True)
        args = tq.ops.enqueue([spec]).commands[0].args
        meta = tq.ops.queue_keys(QUEUE).telemetry[0]
    id_at = args.index(spec.id)
    return ("FCALL", function, *args[2:id_at], "{}", *args[id_at + 1 :]), meta


def variants() -> tuple[list[Variant], str]:
    """The variants, and the queue's meta key."""
    lib = library()
    full, meta = enqueue_call(lib.functions["enqueue"])
    out = [Variant(FULL, lib.source, full, "fcall")]
    for i, (part, edit) in enumerate(PARTS.items()):
        source, fn = copy_without(lib.source, lib.name, f"parts{i}", [edit])
        out.append(Variant(f"without {part}", source, (full[0], fn, *full[2:]), "fcall"))
    source, fn = copy_without(lib.source, lib.name, "partsall", [ALL_AFTER_TIME])
    out.append(Variant("only reading its arguments and the time", source, (full[0], fn, *full[2:]), "fcall"))
    empty = "#!lua name=partsempty\nredis.register_function('parts_empty', function() return 1 end)"
    n_keys, same_arguments = full[2], ("FCALL", "parts_empty", *full[2:])
    out += [
        Variant("empty function, no arguments", empty, ("FCALL", "parts_empty", 0), "fcall"),
        Variant("empty function, the enqueue's keys and arguments", empty, same_arguments, "fcall"),
        Variant("TIME", None, ("TIME",), "time"),
        Variant("LPUSH of a 200-byte value (Huey's enqueue)", None, ("LPUSH", "parts:list", "x" * 200), "lpush"),
    ]
    assert n_keys == 15, n_keys
    return out, meta


class Server:
    """A private redis-server (taskq_bench.private_redis), under callgrind when asked."""

    def __init__(self, callgrind: bool, meta: str) -> None:
        self.meta = meta
        self.dir = tempfile.mkdtemp(prefix="taskq-parts-") if callgrind else None
        port = free_port()
        self.proc = private_redis.start(port, callgrind_dir=self.dir, hz=1)
        self.counter = private_redis.Instructions(self.proc.pid, self.dir) if self.dir else None
        self.r = redis.Redis(port=port)

    def measure(self, v: Variant, calls: int, offset: int) -> float:
        """Per call: kilo-instructions (callgrind) or µs (commandstats)."""
        self.r.hset(self.meta, "ckpt_s", 10**11)
        commands = [tuple(f"{QUEUE}:{offset + i:012d}" if a == "{}" else a for a in v.command) for i in range(calls)]
        if self.counter is not None:
            self.counter.zero()
        else:
            self.r.config_resetstat()
        for c in commands:
            self.r.execute_command(*c)
        if self.counter is None:
            return float(self.r.info("commandstats")[f"cmdstat_{v.stat}"]["usec_per_call"])
        return self.counter.dump() / 1000 / calls

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def run(calls: int, rounds: int, callgrind: bool) -> dict[str, list[float]]:
    """Each variant's figure per round, the variants' order rotated each round."""
    vs, meta = variants()
    server = Server(callgrind, meta)
    try:
        for v in vs:
            if v.library is not None:
                server.r.execute_command("FUNCTION", "LOAD", "REPLACE", v.library)
        figures: dict[str, list[float]] = {v.name: [] for v in vs}
        offset = 0
        for r in range(rounds):
            for v in rotated(vs, r + 1):
                server.r.flushdb()
                offset += calls + 20
                server.measure(v, 20, offset - 20)  # warm-up: the queue's keys exist, not empty
                figures[v.name].append(server.measure(v, calls, offset))
        return figures
    finally:
        server.close()


def table(figures: dict[str, list[float]], unit: str) -> str:
    full = statistics.median(figures[FULL])
    lines = [f"| call | {unit} per call (median) | rounds | part of the full enqueue |", "|---|---:|---|---:|"]
    for name, values in figures.items():
        med = statistics.median(values)
        share = f"{full - med:.1f} ({(full - med) / full:.0%})" if name.startswith("without ") else ""
        spread = ", ".join(f"{x:.1f}" for x in values)
        lines.append(f"| {name} | {med:.1f} | {spread} | {share} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--callgrind", action="store_true", help="count server instructions (valgrind)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    figures = run(args.calls, args.rounds, args.callgrind)
    unit = "server kilo-instructions" if args.callgrind else "server µs"
    after = os.getloadavg()
    print(f"{args.calls} calls x {args.rounds} rounds; load average before {load[0]:.2f}, after {after[0]:.2f}")
    print(table(figures, unit))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"unit": unit, "calls": args.calls, "figures": figures}, f, indent=1)


if __name__ == "__main__":
    main()
