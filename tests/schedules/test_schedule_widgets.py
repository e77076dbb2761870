"""The monitor widget shows the watched queues' schedules and rate limits."""

from __future__ import annotations

from taskq_widgets import QueueMonitor

import taskq


def test_the_monitor_shows_schedules_and_rate_limits(tq: taskq.TaskQueue) -> None:
    tq.configure_queue("jobs", rate="10/m")
    tq.schedule("report", every_s=60, queue="jobs", force=True)
    tq.schedule("elsewhere", every_s=60, queue="other", force=True)
    monitor = QueueMonitor(tq, queues=["jobs"])
    try:
        monitor.refresh()
        (row,) = monitor.schedules
        assert row["name"] == "report" and row["every"] == "every 60 s"
        assert 0 < row["next_fire_in_ms"] <= 60_000
        (limit,) = monitor.rate_limits
        assert limit == {"queue": "jobs", "limiter": "queue", "limit": "10/60s burst 1 (gcra)", "open_in_ms": 0}
    finally:
        monitor.close()
