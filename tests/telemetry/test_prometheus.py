"""The Prometheus text exposition (``taskq metrics``): our small writer's output, read back
with ``prometheus_client``'s own parser, so it is valid exposition and not just what our
writer believes it writes."""

from __future__ import annotations

import math
import time

import redis
from helpers import claim, complete
from prometheus_client.parser import text_string_to_metric_families

import taskq
from taskq.telemetry import PrometheusWriter, prometheus_text


def next_second(rc: redis.Redis) -> None:
    """Sleep into the next whole second of the server clock: window figures cover ended
    seconds only."""
    seconds, micros = rc.time()
    now = seconds + micros / 1e6
    time.sleep(math.floor(now) + 1.02 - now)


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by (name, labels), as prometheus_client parses the text. A counter's
    samples keep their ``_total`` name."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
    return samples


def test_prometheus_writer_escapes_and_groups() -> None:
    w = PrometheusWriter()
    w.add("x_total", "counter", "A counter.\nTwo lines", 3, label='a "quoted" \\ value\n')
    w.add("x_total", "counter", "ignored", 4.5, label="b")
    w.add("g", "gauge", "A gauge.", float("inf"))
    assert w.text() == (
        "# HELP x_total A counter.\\nTwo lines\n"
        "# TYPE x_total counter\n"
        'x_total{label="a \\"quoted\\" \\\\ value\\n"} 3\n'
        'x_total{label="b"} 4.5\n'
        "# HELP g A gauge.\n"
        "# TYPE g gauge\n"
        "g +Inf\n"
    )


def test_the_writer_output_parses_back() -> None:
    w = PrometheusWriter()
    w.add("x_total", "counter", "A counter.\nTwo lines", 3, label='a "quoted" \\ value\n')
    w.add("x_total", "counter", "ignored", 4.5, label="b")
    w.add("g", "gauge", "A gauge.", float("inf"))
    families = {f.name: f for f in text_string_to_metric_families(w.text())}
    assert (families["x"].type, families["x"].documentation) == ("counter", "A counter.\nTwo lines")
    assert parse_exposition(w.text()) == {
        ("x_total", frozenset({("label", 'a "quoted" \\ value\n')})): 3,
        ("x_total", frozenset({("label", "b")})): 4.5,
        ("g", frozenset()): float("inf"),
    }


def test_prometheus_text_carries_the_snapshot_figures(tq: taskq.TaskQueue, rc: redis.Redis) -> None:
    tq.enqueue_many([{"name": "t", "priority": p, "force": True} for p in (2, 2, 9)])
    (task,) = claim(tq, "default", 1)
    time.sleep(0.02)
    complete(tq, task)
    next_second(rc)
    tq._exec.run(tq.ops.worker_heartbeat({"id": "w1", "heartbeat_ms": int(time.time() * 1000), "interval_ms": 1000,
                                          "current": ["x"], "processed": 7}, 5))  # fmt: skip
    snap = tq.snapshot()
    samples = parse_exposition(prometheus_text(snap))

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("taskq_tasks", queue="default", state="queued") == 2
    assert value("taskq_queued_tasks", queue="default", priority="2") == 2
    assert value("taskq_tasks_total", queue="default", outcome="succeeded") == 1
    assert value("taskq_rate_per_second", queue="default", outcome="enqueued", window="1m") == 3 / 60
    run_p50 = snap.queues[0].window(60).latency["run"].p50_ms
    assert run_p50 is not None
    assert value("taskq_latency_seconds", queue="default", metric="run", window="1m", quantile="0.5") == run_p50 / 1000
    assert value("taskq_latency_observations", queue="default", metric="e2e", window="all") == 1
    assert value("taskq_workers", health="alive") == 1
    assert value("taskq_worker_running_tasks", worker="w1") == 1
    assert value("taskq_worker_processed_total", worker="w1") == 7
