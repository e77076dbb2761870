"""Container health checks of the standard deployment (the Dockerfile's HEALTHCHECK and
docker-compose.yml's ``healthcheck`` entries). Exit 0 when healthy, 1 with one line when not.

    python healthcheck.py api [URL]   the API answers 200 on /readyz (default
                                      http://127.0.0.1:8000/readyz): it is up and reaches Redis
    python healthcheck.py worker      a worker on this host (this container) is alive: its
                                      heartbeat in Redis (TASKQ_REDIS_URL) is fresh
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request

DEFAULT_READYZ = "http://127.0.0.1:8000/readyz"
TIMEOUT_S = 4.0


def check_api(url: str) -> str | None:
    """None if ``url`` answers 200, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as reply:
            return None if reply.status == 200 else f"{url} answered {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} unreachable: {exc}"


def check_worker() -> str | None:
    """None if a worker registered from this host is alive, else what went wrong."""
    url = os.environ.get("TASKQ_REDIS_URL")
    if not url:
        return "TASKQ_REDIS_URL is not set"
    import taskq

    host = socket.gethostname()
    try:
        with taskq.TaskQueue(url) as tq:
            workers = tq.snapshot([], running_limit=0).workers
    except taskq.TaskqError as exc:
        return f"cannot read the workers from Redis: {exc}"
    if any(w.host == host and w.health == taskq.WorkerHealth.ALIVE for w in workers):
        return None
    return f"no live worker registered from host {host}"


def main(argv: list[str]) -> int:
    kind = argv[0] if argv else "api"
    if kind == "api":
        problem = check_api(argv[1] if len(argv) > 1 else DEFAULT_READYZ)
    elif kind == "worker":
        problem = check_worker()
    else:
        problem = f"unknown check {kind!r}: use 'api [URL]' or 'worker'"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
