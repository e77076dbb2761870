"""benchmarks/paced_cost.py (issue 14): a short real run with a worker reports each process's CPU
per task, Redis's costliest commands and the latency for every rate and round, every task done;
the rates' order rotates from round to round."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apps.procs import load_module

pc = load_module("benchmarks/paced_cost.py")


def test_a_short_run_reports_every_rate_and_round(tmp_path: Path) -> None:
    out = tmp_path / "paced.json"
    pc.main(["--rates", "0,500", "--count", "60", "--rounds", "2", "--json", str(out)])
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"0.0", "500.0"}
    for rows in results.values():
        assert len(rows) == 2
        for row in rows:
            assert row["done"] == 60
            assert set(row["cpu_us"]) == {"producer", "worker", "redis"}
            assert all(us >= 0 for us in row["cpu_us"].values()) and row["cpu_us"]["producer"] > 0
            assert "fcall" in row["commands"] and row["commands"]["fcall"]["calls"] >= 1
            assert 0 < row["p50_ms"] <= row["p99_ms"]


def test_the_rates_order_rotates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[float] = []

    def fake_one(rate: float, count: int, workdir: Path) -> dict[str, Any]:
        seen.append(rate)
        return {}

    monkeypatch.setattr(pc, "one", fake_one)
    pc.run([0.0, 200.0, 1000.0], 10, 3)
    assert seen == [0.0, 200.0, 1000.0, 200.0, 1000.0, 0.0, 1000.0, 0.0, 200.0]
