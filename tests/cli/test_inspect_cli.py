"""``taskq inspect QUEUE`` against the real test server (typer's CliRunner, in-process)."""

from __future__ import annotations

import json

from helpers import claim
from typer.testing import CliRunner, Result

import taskq
from taskq.cli import app

runner = CliRunner()


def run(url: str, *argv: str) -> Result:
    return runner.invoke(app, ["--url", url, *argv], env={"COLUMNS": "200"})  # ids unfolded


def test_inspect_shows_every_place(tq: taskq.TaskQueue) -> None:
    low = tq.enqueue("mail.send", force=True, queue="mail", priority=2).id
    high = tq.enqueue("mail.send", force=True, queue="mail", priority=9).id
    urgent = tq.enqueue("mail.send", force=True, queue="mail", priority=10).id
    later = tq.enqueue("mail.send", force=True, queue="mail", delay_s=60).id
    (running,) = claim(tq, "mail", worker="w-cli")
    assert running.id == urgent
    result = run(tq.url, "inspect", "mail")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert "queued (claim order): 2" in out and "scheduled (by due time): 1" in out
    assert "running (by lease deadline): 1" in out and "dead (oldest first): 0" in out
    assert out.index(high) < out.index(low)  # claim order
    assert later in out and "w-cli" in out and running.token in out

    data = json.loads(run(tq.url, "inspect", "mail", "--json", "--limit", "1").stdout)
    assert [q["id"] for q in data["queued"]] == [high]
    assert data["totals"] == {"queued": 2, "scheduled": 1, "running": 1, "dead": 0}
    assert data["running"][0]["token"] == running.token and data["running"][0]["worker"] == "w-cli"


def test_inspect_errors_are_one_line(tq: taskq.TaskQueue) -> None:
    bad = run(tq.url, "inspect", "no{braces}")
    assert bad.exit_code == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid queue name"), bad.stderr
    too_many = run(tq.url, "inspect", "mail", "--limit", "5000")
    assert too_many.exit_code == 2 and "--limit" in too_many.stderr
