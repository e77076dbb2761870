"""``taskq schedule list|add|remove|pause|resume`` against a real server."""

from __future__ import annotations

import json

import redis
from typer.testing import CliRunner, Result

from taskq.cli import app

runner = CliRunner()


def run(url: str, *argv: str) -> Result:
    return runner.invoke(app, ["--url", url, *argv])


def test_schedule_commands(redis_url: str, rc: redis.Redis) -> None:
    added = run(redis_url, "schedule", "add", "report", "--cron", "0 3 * * *", "--tz", "Europe/Paris",
                "--args", "[1, 2]", "--force", "-q", "reports")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "schedule 'report': report on queue 'reports', 0 3 * * * (Europe/Paris)" in added.output
    listed = run(redis_url, "schedule", "list", "--json")
    (entry,) = json.loads(listed.stdout)
    assert entry["args"] == [1, 2] and entry["timezone"] == "Europe/Paris" and entry["next_fire_ms"] > 0
    assert "report" in run(redis_url, "schedule", "list").stdout
    assert run(redis_url, "schedule", "pause", "report").exit_code == 0
    assert json.loads(run(redis_url, "schedule", "list", "--json").stdout)[0]["paused"] is True
    assert run(redis_url, "schedule", "resume", "report").exit_code == 0
    assert run(redis_url, "schedule", "remove", "report").exit_code == 0
    assert json.loads(run(redis_url, "schedule", "list", "--json").stdout) == []


def test_schedule_errors_are_one_line_and_write_nothing(redis_url: str, rc: redis.Redis) -> None:
    for argv in (
        ["add", "t", "--cron", "nope", "--force"],
        ["add", "t", "--every-s", "5", "--tz", "Mars/Base", "--force"],
        ["add", "unknown_task", "--every-s", "5"],
        ["remove", "missing"],
        ["pause", "missing"],
    ):
        result = run(redis_url, "schedule", *argv)
        assert result.exit_code == 1, (argv, result.output)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    bad_json = run(redis_url, "schedule", "add", "t", "--every-s", "5", "--args", "{", "--force")
    assert bad_json.exit_code == 2
    assert rc.keys("*") == []
