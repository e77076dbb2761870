"""The Binder setup (repo2docker files in binder/): the files say what repo2docker needs, and
`binder/start` really brings up a redis-server that a plain `taskq.TaskQueue()` connects to."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import wait_until
from packaging.specifiers import SpecifierSet

import taskq
from taskq.server import free_port, ping

ROOT = Path(__file__).resolve().parents[2]
BINDER = ROOT / "binder"
START = BINDER / "start"

# Runs under binder/start: connect the default way (from TASKQ_REDIS_URL), enqueue, read it back,
# and report which server answered.
CHILD = """
import json, os, taskq
tq = taskq.TaskQueue()
t = tq.enqueue("binder.check", args=[1, "two"], queue="binder", force=True)  # no worker runs it
rec = tq.get(t.id)
info = tq.redis.info("server")
print(json.dumps({
    "env_url": os.environ["TASKQ_REDIS_URL"],
    "tq_url": tq.url,
    "pidfile": os.environ["TASKQ_BINDER_REDIS_PIDFILE"],
    "server_pid": info["process_id"],
    "tcp_port": info["tcp_port"],
    "save": tq.redis.config_get("save")["save"],
    "appendonly": tq.redis.config_get("appendonly")["appendonly"],
    "task_id": t.id,
    "status": rec.status.value,
    "args": rec.args,
}))
tq.close()
"""


def _pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _lines(path: Path) -> list[str]:
    """Non-empty lines with comments removed."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _start_env(tmp_path: Path, port: int | str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TASKQ_REDIS_URL", "REDIS_URL")}
    env["TASKQ_BINDER_REDIS_PORT"] = str(port)
    env["TMPDIR"] = str(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_server(port: int, pidfile: Path) -> None:
    """Shut down the server binder/start left behind (it is daemonized): SHUTDOWN, then by pid."""
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as r:
            r.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # already gone (or SHUTDOWN closed the connection under us, as it does)
    if pid is not None and _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def binder_port(tmp_path: Path) -> Iterator[int]:
    """A free port for binder/start, and the server it starts there stopped afterwards."""
    port = free_port()
    assert not ping("127.0.0.1", port), "free_port() returned a port with a server on it"
    yield port
    _stop_server(port, tmp_path / f"taskq-binder-redis-{port}" / "redis.pid")


def test_runtime_txt_pins_python_311_which_pyproject_allows() -> None:
    assert _lines(BINDER / "runtime.txt") == ["python-3.11"]
    assert SpecifierSet(_pyproject()["project"]["requires-python"]).contains("3.11")


def test_requirements_install_this_repo_with_the_notebooks_extra() -> None:
    lines = _lines(BINDER / "requirements.txt")
    # repo2docker runs pip from the repository root, so "." is the repo; a local reference also
    # makes it copy the whole repo before installing.
    local = [line for line in lines if re.fullmatch(r"(-e\s+)?\.\[[\w,\s-]+\]", line)]
    assert len(local) == 1, lines
    extras = {e.strip() for e in local[0].split("[", 1)[1].rstrip("]").split(",")}
    assert "notebooks" in extras
    declared = _pyproject()["project"]["optional-dependencies"]
    assert extras <= set(declared)
    notebooks = " ".join(declared["notebooks"])
    for needed in ("jupyterlab", "widgets", "ipykernel"):
        assert needed in notebooks


def test_apt_txt_installs_redis_server() -> None:
    assert "redis-server" in _lines(BINDER / "apt.txt")


def test_readme_points_to_the_binder_link_and_make_lab_opening_the_quickstart(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/binder_url.sh" in readme
    # The script prints the link for the checkout's GitHub remote: try it on a scratch checkout.
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    shutil.copy(ROOT / "scripts" / "binder_url.sh", scripts)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(
        ["git", "-C", str(tmp_path), "remote", "add", "origin", "git@github.com:someone/taskq.git"], check=True
    )
    out = subprocess.run(
        ["bash", str(scripts / "binder_url.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    link = re.fullmatch(r"https://mybinder\.org/v2/gh/someone/taskq/HEAD\?urlpath=lab/tree/([\w./-]+)", out)
    assert link, out
    assert link.group(1) == "notebooks/01_quickstart.ipynb"
    assert (ROOT / link.group(1)).is_file()
    assert "`make lab`" in readme
    makefile = (ROOT / "Makefile").read_text()
    lab = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert lab, "Makefile has no lab target"
    script = re.search(r"bash (scripts/[\w.-]+\.sh)", lab.group(1))
    assert script, lab.group(1)
    assert re.search(r"jupyter lab .*notebooks/01_quickstart\.ipynb", (ROOT / script.group(1)).read_text())


def test_start_is_an_executable_bash_script() -> None:
    assert os.access(START, os.X_OK), "binder/start must be executable (repo2docker runs it directly)"
    assert START.read_text().splitlines()[0] == "#!/usr/bin/env bash"
    subprocess.run(["bash", "-n", str(START)], check=True)


def test_start_brings_up_a_redis_that_taskq_connects_to(tmp_path: Path, binder_port: int) -> None:
    proc = subprocess.run(
        [str(START), sys.executable, "-c", CHILD],
        env=_start_env(tmp_path, binder_port),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])

    url = f"redis://127.0.0.1:{binder_port}/0"
    assert seen["env_url"] == url
    assert seen["tq_url"] == url
    assert seen["tcp_port"] == binder_port
    assert (seen["status"], seen["args"]) == ("queued", [1, "two"])
    assert (seen["save"], seen["appendonly"]) == ("", "no")  # no persistence

    # The server is the one binder/start started (its pid file), a redis-server on that port ...
    pidfile = Path(seen["pidfile"])
    assert pidfile.parent == tmp_path / f"taskq-binder-redis-{binder_port}"
    pid = int(pidfile.read_text())
    assert pid == seen["server_pid"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "redis-server" in cmdline and str(binder_port) in cmdline
    # ... and it outlives the script (daemonized) with the task in it, readable from outside.
    outside = taskq.TaskQueue(url)
    try:
        assert outside.get(seen["task_id"]).args == [1, "two"]
    finally:
        outside.close()

    _stop_server(binder_port, pidfile)
    wait_until(lambda: not _pid_alive(pid), timeout_s=30, what="the binder redis-server to exit")
    assert not ping("127.0.0.1", binder_port)


def test_start_without_a_command_leaves_the_server_running(tmp_path: Path, binder_port: int) -> None:
    proc = subprocess.run(
        [str(START)], env=_start_env(tmp_path, binder_port), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"redis://127.0.0.1:{binder_port}/0" in proc.stderr
    assert ping("127.0.0.1", binder_port)


def test_start_refuses_a_port_in_use_and_runs_nothing(tmp_path: Path, redis_url: str) -> None:
    busy = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    marker = tmp_path / "ran"
    proc = subprocess.run(
        [str(START), "touch", str(marker)],
        env=_start_env(tmp_path, busy),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"port {busy} is already in use" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "63 79"])
def test_start_rejects_a_bad_port(tmp_path: Path, port: str) -> None:
    marker = tmp_path / "ran"
    proc = subprocess.run(
        [str(START), "touch", str(marker)],
        env=_start_env(tmp_path, port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "TASKQ_BINDER_REDIS_PORT must be a port number" in proc.stderr
    assert not marker.exists()
