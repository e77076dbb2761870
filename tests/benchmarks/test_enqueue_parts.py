"""benchmarks/enqueue_parts.py (issue 14): each copy of the enqueue function leaves out the part it
names and nothing else, and a short real run reports every variant for every round."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from apps.procs import load_module

from taskq.keys import QueueKeys
from taskq.server import EmbeddedServer

ep = load_module("benchmarks/enqueue_parts.py")
K = QueueKeys("taskq", ep.QUEUE)

#: What each part leaves behind after one enqueue of task ``parts:1`` into an empty queue:
#: (a Redis command that reads it, its answer with the part in).
EFFECTS = {
    "record (HSET of the task hash)": (("EXISTS", K.task("parts:1")), 1),
    "queue order (ZADD queued)": (("ZCARD", K.queued), 1),
    "event (XADD, through the telemetry context)": (("XLEN", K.events), 1),
    "enqueued counter (HINCRBY stats)": (("HGET", K.stats, "enqueued"), b"1"),
    "depth per priority (HINCRBY depth)": (("HGET", K.depth, "5"), b"1"),
    "FIFO clock write (HSET meta)": (("HEXISTS", K.meta, "clock"), 1),
}


def _after_one(r: redis.Redis, variant: Any) -> dict[str, Any]:
    r.flushdb()
    r.execute_command(*("parts:1" if a == "{}" else a for a in variant.command))
    return {part: r.execute_command(*probe) for part, (probe, _) in EFFECTS.items()}


def test_each_copy_leaves_out_its_part_and_only_it() -> None:
    variants, _ = ep.variants()
    by_name = {v.name: v for v in variants}
    assert set(by_name) >= {ep.FULL, *(f"without {p}" for p in ep.PARTS)}
    with EmbeddedServer(kind="redis-server") as server:
        r = redis.Redis.from_url(server.url)
        for v in variants:
            if v.library is not None:
                r.execute_command("FUNCTION", "LOAD", "REPLACE", v.library)
        full = _after_one(r, by_name[ep.FULL])
        assert full == {part: answer for part, (_, answer) in EFFECTS.items()}
        for part in EFFECTS:
            seen = _after_one(r, by_name[f"without {part}"])
            assert seen[part] != full[part], part
            assert {p: a for p, a in seen.items() if p != part} == {p: a for p, a in full.items() if p != part}, part


def test_an_edit_that_no_longer_applies_is_an_error() -> None:
    lib = ep.library()
    try:
        ep.copy_without(lib.source, lib.name, "x", [("redis.call('NO SUCH CALL')", "")])
    except SystemExit as e:
        assert "update PARTS" in str(e)
    else:
        raise AssertionError("an edit whose text is gone was made silently")


def test_a_short_run_reports_every_variant_each_round(tmp_path: Path) -> None:
    out = tmp_path / "parts.json"
    ep.main(["--calls", "30", "--rounds", "2", "--json", str(out)])
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) == {v.name for v in ep.variants()[0]}
    assert all(len(rounds) == 2 and all(x > 0 for x in rounds) for rounds in figures.values())
