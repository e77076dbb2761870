"""The JupyterLab harness the browser tests share: a JupyterLab server on a free port whose
kernels talk to the test's Redis (the ``lab`` fixture in conftest.py builds it with
:func:`start_lab`), a notebook writer, Chromium through Playwright, and the page steps every
test repeats (open a notebook on a ready kernel, Run All Cells, wait, screenshots).

Named ``labharness`` rather than ``jupyterlab``: test modules here are imported by their base
name, and a ``jupyterlab`` module would shadow the real package in the test process."""

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
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright
from webhelpers import CHROMIUM, CHROMIUM_ARGS

from taskq.server import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
# Generous bounds for a loaded 2-core machine; they only stop a hung test, never measure speed.
LAB_START_S = 240.0
STEP_S = 120.0


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


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, diagnose: Callable[[], str] = str) -> None:
    """Poll ``check`` until true; after ``timeout_s`` fail with ``what`` and ``diagnose()``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{diagnose()}")
        time.sleep(0.25)


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

    def notebook(self, name: str, cells: list[str]) -> str:
        """Write ``name`` with ``cells`` under the server root and start its kernel; its URL."""
        write_notebook(self.root / name, cells)
        self.start_kernel(name)
        return f"{self.url}/lab/tree/{name}?token={self.token}"


@contextlib.contextmanager
def start_lab(tmp_path: Path, redis_url: str) -> Iterator[Lab]:
    """JupyterLab on a free port with a random token, its kernels pointed at ``redis_url``;
    shut down (server and kernels) afterwards, whatever happened. Its log is copied to
    test-artifacts/jupyterlab.log."""
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
        wait_for(up, LAB_START_S, "JupyterLab to answer", server.log_tail)
        yield server
    finally:
        stop_lab(proc, server)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(log, ARTIFACTS / "jupyterlab.log")


def stop_lab(proc: subprocess.Popen[bytes], server: Lab) -> None:
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


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright; closed afterwards."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def post_mortem(page: Page, screenshot: Path, html_name: str = "jupyterlab-page.html") -> Iterator[Page]:
    """On any failure inside, save a screenshot and the page's HTML to test-artifacts/ (best
    effort), then re-raise. A stale HTML dump from an earlier run is removed first."""
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / html_name).unlink(missing_ok=True)
    try:
        yield page
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(screenshot))
            (ARTIFACTS / html_name).write_text(page.content())
        raise


def open_notebook(page: Page, url: str) -> None:
    """Open a notebook URL (see :meth:`Lab.notebook`) and wait until its python3 kernel is idle."""
    page.goto(url, wait_until="domcontentloaded")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
    page.locator(".jp-NotebookPanel-toolbar .jp-KernelName", has_text="Python 3").first.wait_for()
    page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()


def run_all_cells(page: Page) -> None:
    """Run > Run All Cells, through the menu bar as a person would."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def wait_for_output(page: Page, text: str | re.Pattern[str]) -> str:
    """Wait for a cell output containing ``text`` (e.g. a marker a cell prints); its text.
    A print reaches the page in parts: give a pattern to wait for the whole line."""
    output = page.locator(".jp-OutputArea-output", has_text=text).first
    output.wait_for()
    return output.text_content() or ""
