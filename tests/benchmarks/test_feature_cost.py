"""benchmarks/feature_cost.py (issue 14): which feature each command serves, by the real key names,
and a short real run whose command counts show leases, retries and telemetry where they should be."""

from __future__ import annotations

import json
from pathlib import Path

from apps.procs import load_module

from taskq.keys import QueueKeys

fc = load_module("benchmarks/feature_cost.py")


def test_each_key_of_a_queue_goes_to_its_feature() -> None:
    keys = QueueKeys("taskq", "fc")
    assert fc.feature_of("zadd", keys.running, "123") == "leases"
    assert fc.feature_of("hincrby", keys.meta, "lease_seq") == "leases"
    assert fc.feature_of("zadd", "taskq:workers", "1") == "leases"
    assert fc.feature_of("hset", "taskq:worker:w1", "queues") == "leases"
    for key in (keys.stats, keys.events, keys.depth, keys.ckpt_fine, keys.ckpt_coarse, keys.windows, *keys.histograms):
        assert fc.feature_of("any", key, "x") == "telemetry", key
    assert fc.feature_of("hmget", keys.meta, "ckpt_s") == "telemetry"
    assert fc.feature_of("hset", keys.meta, "clock") == "core"
    for key in (keys.queued, keys.scheduled, keys.task("fc:0193"), keys.config, keys.limits):
        assert fc.feature_of("any", key, "x") == "core", key
    assert fc.key_role(keys.task("fc:0193")) == "t" and fc.key_role("taskq:worker:w1") == "worker"
    assert fc.key_role(keys.histograms[0]) == "hist" and fc.key_role("taskq:queues") == "queues"


def test_a_short_run_counts_each_features_commands(tmp_path: Path) -> None:
    out = tmp_path / "fc.json"
    fc.main(["--tasks", "300", "--rounds", "1", "--monitor-tasks", "100", "--json", str(out)])
    figures = json.loads(out.read_text())
    calls = figures["calls_per_task"]
    assert calls["telemetry on"]["telemetry"] > 0 and calls["telemetry on"]["leases"] > 0
    assert calls["telemetry off"]["telemetry"] < calls["telemetry on"]["telemetry"]
    assert calls["telemetry on"]["core"] > 0 and calls["telemetry on"]["Lua"] > 0
    extra = dict(figures["retry_extra_calls"])
    assert extra.get("fcall", 0) + extra.get("evalsha", 0) >= 0.9  # one more script call per retried task
    monitor = {(c, f, role) for c, f, role, _, _ in figures["monitor"]["telemetry on"]}
    assert ("xadd", "telemetry", "events") in monitor and ("zadd", "leases", "running") in monitor
    assert not any(f == "telemetry" and c == "xadd" for c, f, _, _, _ in figures["monitor"]["telemetry off"])
    assert [run["mode"] for run in figures["runs"]] == list(fc.MODES)
