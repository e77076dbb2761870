"""``taskq workflow show|cancel`` through the real command (typer's runner)."""

from __future__ import annotations

import json

from helpers import claim, complete
from typer.testing import CliRunner

import taskq
from taskq.cli import app

runner = CliRunner()


def test_workflow_show_and_cancel(tq: taskq.TaskQueue, redis_url: str) -> None:
    @tq.task(name="cli.step")
    def step(*args: int) -> int:
        return sum(args)

    wf = tq.submit(taskq.chain(step.s(1), step.s(2), step.s(3)))
    complete(tq, claim(tq)[0], 1)
    shown = runner.invoke(app, ["--url", redis_url, "workflow", "show", wf.id])
    assert shown.exit_code == 0, shown.output
    assert f"workflow {wf.id}: running (3 nodes" in shown.stdout and "waiting" in shown.stdout
    as_json = json.loads(runner.invoke(app, ["--url", redis_url, "workflow", "show", wf.id, "--json"]).stdout)
    assert [n["status"] for n in as_json["nodes"]] == ["succeeded", "queued", "waiting"]
    cancelled = runner.invoke(app, ["--url", redis_url, "workflow", "cancel", wf.id, "--json"])
    assert json.loads(cancelled.stdout) == {"id": wf.id, "cancelled": 2, "cancelling": 0}
    missing = runner.invoke(app, ["--url", redis_url, "workflow", "show", "nope"])
    assert missing.exit_code == 1
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no workflow nope" in lines[0]
