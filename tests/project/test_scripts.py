"""The developer scripts a new user meets first: `make lab` and the Binder link.

Seen by a new user: as root Jupyter refused to start ("Running as root is not recommended"), on a
headless machine it waited for a browser that never opened, and the README's Binder badge pointed at
a placeholder owner.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from taskq.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_lab_starts_headless_and_prints_the_url(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    log = tmp_path / "lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/lab.sh", f"--port={port}", "--ServerApp.port_retries=0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = None
        deadline = time.monotonic() + 90
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            match = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", log.read_text())
            if match:
                url = match
            time.sleep(0.2)
        text = log.read_text()
        assert url is not None, f"no URL printed (exit {proc.poll()}):\n{text[-3000:]}"
        assert "no browser is opened" in text
        if os.geteuid() == 0:
            assert "Running as root is not recommended" not in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={url[1]}", timeout=10) as reply:
            assert reply.status == 200
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_binder_link_comes_from_the_remote_not_a_placeholder(tmp_path: Path) -> None:
    assert "OWNER" not in (ROOT / "README.md").read_text()
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "binder_url.sh", tmp_path / "scripts")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    script = ["bash", str(tmp_path / "scripts" / "binder_url.sh")]
    missing = subprocess.run(script, capture_output=True, text=True)
    assert missing.returncode == 1 and len(missing.stderr.splitlines()) == 1
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:acme/taskq.git"], check=True)
    found = subprocess.run(script, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == (
        "https://mybinder.org/v2/gh/acme/taskq/HEAD?urlpath=lab/tree/notebooks/01_quickstart.ipynb"
    )


def test_demo_runs_and_its_output_has_no_raw_log_lines() -> None:
    """`make demo` runs examples/demo.py; a raw `WARNING taskq.worker:` line once broke its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("TASKQ_REDIS_URL", "REDIS_URL")}
    env["COLUMNS"] = "80"
    done = subprocess.run(
        [sys.executable, "examples/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "every task finished" in output
    raw = [line for line in output.splitlines() if re.search(r"\b(DEBUG|INFO|WARNING|ERROR) taskq", line)]
    assert raw == [], raw


def test_source_points_only_at_documents_the_repo_has() -> None:
    """Docstrings once pointed readers at a DESIGN.md the repository does not ship."""
    names = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts and "node_modules" not in p.parts}
    missing = []
    for folder in ("taskq", "widgets/taskq_widgets", "api/taskq_api", "benchmarks/taskq_bench"):
        for source in (ROOT / folder).rglob("*.py"):
            for name in re.findall(r"\b([A-Za-z_]+\.md)\b", source.read_text()):
                if name not in names:
                    missing.append(f"{source.relative_to(ROOT)}: {name}")
    assert missing == []
