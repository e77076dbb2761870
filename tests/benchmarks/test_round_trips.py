"""benchmarks/round_trips.py (issue 14): each design's consumer gets every message once, and a
short real run reports every design over rotated rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from apps.procs import load_module

from taskq.server import EmbeddedServer

rt = load_module("benchmarks/round_trips.py")


@pytest.mark.parametrize("design", rt.DESIGNS)
def test_each_design_delivers_every_message_once(design: str) -> None:
    with EmbeddedServer(kind="redis-server") as server:
        latencies = rt.one(server.url, design, 1000.0, 50)
    assert len(latencies) == 50
    assert all(0 < ms < 5000 for ms in latencies)


def test_a_short_run_reports_every_design(tmp_path: Path) -> None:
    out = tmp_path / "rt.json"
    rt.main(["--rate", "1000", "--count", "40", "--rounds", "2", "--json", str(out)])
    figures = json.loads(out.read_text())
    assert set(figures["designs"]) == set(rt.DESIGNS)
    for row in figures["designs"].values():
        assert len(row["rounds"]) == 2
        assert 0 < row["p50"] <= row["p90"] <= row["p99"]
