"""``taskq serve APP`` as a real process: refuses to start without a token unless
--insecure-local, and then binds to 127.0.0.1 only."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from conftest import HERE, REPO, TOKEN

from taskq.server import free_port


def serve_cmd(*options: str) -> list[str]:
    return [sys.executable, "-m", "taskq.cli", "serve", "apiapp:tq", *options]


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKQ_API_")}
    return {**env, "TASKQ_REDIS_URL": redis_url, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]), **extra}


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, "taskq serve exited"
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "taskq serve did not come up"
        time.sleep(0.1)


def test_serve_without_a_token_refuses_to_start(redis_url: str) -> None:
    done = subprocess.run(serve_cmd("--port", "0"), cwd=HERE, env=env_for(redis_url), capture_output=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--insecure-local" in lines[0], lines


def test_serve_with_a_token_from_a_file(redis_url: str, tmp_path: object) -> None:
    token_file = os.path.join(str(tmp_path), "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    port = free_port()
    env = env_for(redis_url, TASKQ_API_TOKEN_FILE=token_file)
    proc = subprocess.Popen(serve_cmd("--host", "127.0.0.1", "--port", str(port)), cwd=HERE, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        body = {"name": "add", "args": [1, 2]}
        assert httpx.post(f"{url}/api/v1/tasks", json=body).status_code == 401
        r = httpx.post(f"{url}/api/v1/tasks", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201, r.text
    finally:
        proc.terminate()
        proc.wait(30)


def test_insecure_local_binds_to_loopback_only(redis_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        serve_cmd("--host", "0.0.0.0", "--port", str(port), "--insecure-local"), cwd=HERE, env=env_for(redis_url)
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        with open("/proc/net/tcp") as f:
            listening = [line.split()[1] for line in f.read().splitlines()[1:] if line.split()[3] == "0A"]
        assert f"0100007F:{port:04X}" in listening and f"00000000:{port:04X}" not in listening
    finally:
        proc.terminate()
        proc.wait(30)


def test_serve_with_an_app_that_does_not_load_is_one_error_line(redis_url: str) -> None:
    cmd = [sys.executable, "-m", "taskq.cli", "serve", "nosuchmodule:tq", "--insecure-local"]
    done = subprocess.run(cmd, cwd=HERE, env=env_for(redis_url), capture_output=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "nosuchmodule" in lines[0], lines


def test_serve_with_two_workers(redis_url: str) -> None:
    port = free_port()
    cmd = serve_cmd("--port", str(port), "--workers", "2", "--insecure-local")
    proc = subprocess.Popen(cmd, cwd=HERE, env=env_for(redis_url))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        r = httpx.post(f"{url}/api/v1/tasks", json={"name": "add", "args": [1, 2]})
        assert r.status_code == 201, r.text
    finally:
        proc.terminate()
        proc.wait(30)
