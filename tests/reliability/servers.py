"""Private redis-server processes for the reliability tests: a password, ACL users, TLS or a
memory limit need a server of their own (the session's shared one stays plain)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from taskq.server import free_port


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not listen on {port}: {log.read_text(errors='replace')}")


@contextlib.contextmanager
def redis_server(tmp_path: Path, *args: str, port: int | None = None, tls: bool = False) -> Iterator[int]:
    """Run ``redis-server`` with ``args`` on a free loopback port (yielded) until the block ends.
    With ``tls`` the port given is the TLS port and the plain one is off."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no redis-server binary")
    port = port or free_port()
    listen = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
    workdir = tmp_path / f"redis-{port}"
    workdir.mkdir(exist_ok=True)
    log = workdir / "server.log"
    argv = [binary, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    argv += ["--daemonize", "no", "--logfile", str(log), *args]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, log)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
