"""Shared by the tests that need real HTTP or a real browser: an ASGI app under uvicorn on a
free loopback port, and Debian's Chromium for Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from taskq.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # without these Chromium keeps dialling the closed network
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
#: A generous bound that only stops a hung start, never measures speed.
START_S = 30.0


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def require(ok: bool, why: str, *, module: bool = False) -> None:
    """Skip when ``ok`` is false, but fail under CI (where the set-up installs what tests need)."""
    if ok:
        return
    if under_ci():
        pytest.fail(f"under CI: {why}", pytrace=False)
    pytest.skip(why, allow_module_level=module)


def require_chromium(*, module: bool = False) -> None:
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)", module=module)


@contextlib.contextmanager
def serve_asgi(app: object) -> Iterator[str]:
    """``app`` under uvicorn (lifespan on) on a free 127.0.0.1 port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_S)
