"""The APP the dashboard's end-to-end tests serve and run workers for (``dashapp:tq``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import taskq

QUEUE = "dash"
tq = taskq.TaskQueue()  # TASKQ_REDIS_URL from the test


@tq.task(queue=QUEUE, max_retries=0)
def work(ms: int = 100, note: str = "") -> str:
    """Sleeps ``ms`` milliseconds (keeps a one-slot worker busy) and returns the note."""
    time.sleep(ms / 1000)
    return note


@tq.task(queue=QUEUE, max_retries=0)
def hold(ms: int = 100, note: str = "") -> str:
    """Keeps a one-slot worker busy until the file ``note`` exists (at most ``ms`` milliseconds):
    a test holds the slot for as long as its steps take on a loaded machine, then lets go."""
    deadline = time.monotonic() + ms / 1000
    while not Path(note).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return note


@tq.task(queue=QUEUE, max_retries=0)
def needs_fix(marker: str) -> str:
    """Fails until the file ``marker`` exists: dies first, succeeds once re-driven after the fix."""
    if not Path(marker).exists():
        raise RuntimeError(f"not fixed yet: {os.path.basename(marker)} is missing")
    return "fixed"
