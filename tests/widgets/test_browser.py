"""JupyterLab in Debian's headless Chromium (Playwright): a notebook that shows a
`taskq_widgets.QueueMonitor` while an in-kernel worker drains a steady trickle of tasks renders
the monitor, and its numbers go up on screen (live, not a static render).

Skipped only when /usr/bin/chromium is missing and CI is not set; under CI a missing browser
fails. Leaves a screenshot in test-artifacts/jupyterlab-monitor.png."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright
from webhelpers import CHROMIUM, CHROMIUM_ARGS, require_chromium

import taskq
from taskq.server import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ARTIFACTS / "jupyterlab-monitor.png"
WIDGET_SCREENSHOT = ARTIFACTS / "jupyterlab-monitor-widget.png"
QUEUE = "browser"
# The monitor as the widget manager renders it inside a cell's output (not the static fallback).
MONITOR = ".jp-OutputArea-output .jupyter-widgets .taskq-monitor"
# Generous bounds for a loaded 2-core machine; they only stop a hung test, never measure speed.
LAB_START_S = 240.0
STEP_S = 120.0

require_chromium(module=True)

CELLS = [
    """\
import os, threading
import taskq, taskq_widgets

tq = taskq.TaskQueue()  # finds the test's Redis through TASKQ_REDIS_URL
print("KERNEL-URL", tq.url)""",
    f"""\
@tq.task(queue={QUEUE!r})
def square(x: int) -> int:
    return x * x

worker = tq.start_worker(queues=[{QUEUE!r}], concurrency=2)""",
    """\
mon = taskq_widgets.QueueMonitor(tq, interval_s=0.25)
mon.start()
mon""",
    """\
stop = threading.Event()

def feed() -> None:
    # a steady trickle, so the numbers keep moving while the browser watches
    for i in range(100_000):
        if stop.wait(0.05):
            return
        square.enqueue(i)

threading.Thread(target=feed, daemon=True).start()
print("FEEDING")""",
]


def write_notebook(path: Path, cells: list[str]) -> None:
    """A minimal nbformat 4 notebook with no outputs, on the venv's python3 kernel."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{i}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(notebook, indent=1))


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (kernels run in their own sessions, so killpg misses them)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return found


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def api(self, path: str, method: str = "GET", body: object = None) -> Any:
        """Call the Jupyter server REST API; the decoded JSON reply (None if empty)."""
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            data = reply.read()
        return json.loads(data) if data else None

    def start_kernel(self, notebook: str) -> str:
        """Start the notebook's session (python3 kernel) so the page attaches to it instead of
        asking which kernel to use; returns the kernel id."""
        session = self.api(
            "/api/sessions", "POST", {"path": notebook, "type": "notebook", "name": "", "kernel": {"name": "python3"}}
        )
        kernel_id: str = session["kernel"]["id"]
        return kernel_id

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str, diagnose: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{diagnose()}")
        time.sleep(0.25)


@pytest.fixture
def lab(tmp_path: Path, redis_url: str) -> Iterator[Lab]:
    """JupyterLab on a free port with a random token, its kernels pointed at the test Redis;
    shut down (server and kernels) afterwards, whatever happened."""
    root = tmp_path / "notebooks"
    root.mkdir()
    home = tmp_path / "jupyter"
    port = free_port()
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "JUPYTER_PATH")}
    env.update(
        TASKQ_REDIS_URL=redis_url,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        # nothing from (or into) the developer's own Jupyter and IPython settings
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    argv = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the extension manager
    ]
    if os.geteuid() == 0:  # CI containers run as root
        argv.append("--allow-root")
    # No "get Jupyter news?" prompt over the page (and no fetching it).
    notification = home / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    log = tmp_path / "jupyterlab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    server = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=log)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {proc.returncode}\n{server.log_tail()}")
        try:
            return bool(server.api("/api/status"))
        except (urllib.error.URLError, OSError):
            return False

    try:
        _wait_for(up, LAB_START_S, "JupyterLab to answer", server.log_tail)
        yield server
    finally:
        _stop_lab(proc, server)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "jupyterlab.log")


def _stop_lab(proc: subprocess.Popen[bytes], server: Lab) -> None:
    """Ask the server to shut down (it stops its kernels); then kill whatever is left."""
    family = _children(proc.pid)
    if proc.poll() is None:
        try:
            server.api("/api/shutdown", method="POST")
            proc.wait(timeout=60)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _number(page: Page, field: str) -> float | None:
    """The number shown in the monitor's ``data-field`` element, or None if there is none yet."""
    cell = page.locator(f'{MONITOR} [data-field="{field}"]').first
    if cell.count() == 0:
        return None
    match = re.search(r"-?\d[\d,]*(?:\.\d+)?", cell.text_content() or "")
    return float(match.group().replace(",", "")) if match else None


def _shows_number(page: Page, field: str) -> bool:
    return _number(page, field) is not None


def _run_all_cells(page: Page) -> None:
    """Run > Run All Cells, through the menu bar as a person would."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


@pytest.mark.timeout(LAB_START_S + 6 * STEP_S)  # above the suite's 300 s: the waits are bounds, not targets
def test_queue_monitor_renders_live_numbers_in_jupyterlab(lab: Lab, tq: taskq.TaskQueue) -> None:
    write_notebook(lab.root / "monitor.ipynb", CELLS)
    lab.start_kernel("monitor.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "jupyterlab-page.html").unlink(missing_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(STEP_S * 1000)
        try:
            page.goto(f"{lab.url}/lab/tree/monitor.ipynb?token={lab.token}", wait_until="domcontentloaded")
            page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
            page.locator(".jp-NotebookPanel-toolbar .jp-KernelName", has_text="Python 3").first.wait_for()
            page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
            _run_all_cells(page)

            # The kernel talks to the test's Redis (its first cell prints the URL it found).
            kernel_url = page.locator(".jp-OutputArea-output", has_text="KERNEL-URL").first
            kernel_url.wait_for()
            assert (kernel_url.text_content() or "").split() == ["KERNEL-URL", tq.url]
            page.locator(".jp-OutputArea-output", has_text="FEEDING").first.wait_for()

            monitor = page.locator(MONITOR).first
            monitor.wait_for(state="visible")
            monitor.scroll_into_view_if_needed()
            for field in ("pending", "running", "succeeded", "throughput", "p99_ms"):
                _wait_for(partial(_shows_number, page, field), STEP_S, f"a number in {field}")

            # Live: the succeeded count on screen keeps climbing while tasks flow.
            shown = [_number(page, "succeeded") or 0.0]
            for _ in range(3):
                _wait_for(
                    lambda: (_number(page, "succeeded") or 0.0) > shown[-1],
                    STEP_S,
                    f"succeeded to rise above {shown[-1]:g} on screen",
                )
                shown.append(_number(page, "succeeded") or 0.0)
            assert shown == sorted(shown) and shown[-1] > shown[0]
            # What the page shows came from Redis: never more than the queue has recorded.
            assert shown[-1] <= tq.stats(QUEUE).counters.get("succeeded", 0)
            page.screenshot(path=str(SCREENSHOT))
            monitor.screenshot(path=str(WIDGET_SCREENSHOT))
        except BaseException:
            with contextlib.suppress(Exception):  # best effort, for the post-mortem
                page.screenshot(path=str(SCREENSHOT))
                (ARTIFACTS / "jupyterlab-page.html").write_text(page.content())
            raise
        finally:
            browser.close()
