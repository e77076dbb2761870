"""pytest --nbmake notebooks/: give the notebook kernels a private Redis.

Before the first notebook runs, a redis-server (or valkey-server) is started on a free port; while
each notebook runs, its URL is in ``TASKQ_REDIS_URL``, which the kernel (a subprocess of pytest)
inherits, so ``taskq.TaskQueue()`` in a notebook finds it before anything else. A URL already set by
the caller (e.g. CI with its own service) is used as it is. The variable is set only around notebook
items, so the tests under tests/ (same session) never see it. The machine's Redis on
localhost:6379 is never touched: with the variable set, taskq does not probe it. The notebooks
directory goes on ``PYTHONPATH`` so that worker subprocesses started by a notebook can import
``nbtasks``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskq import EmbeddedServer

NOTEBOOKS_DIR = Path(__file__).resolve().parent
# As the caller set it. When tests/ is collected too, its conftest has already removed it (tests
# never follow the environment to a server), and the notebooks get a private server.
_CALLER_URL = os.environ.get("TASKQ_REDIS_URL")
_server: EmbeddedServer | None = None
_saved_env: dict[str, str | None] = {}


def _notebook_url() -> str:
    global _server
    if _CALLER_URL:
        return _CALLER_URL
    if _server is None:
        server = EmbeddedServer()
        server.start()
        if server.kind == "fakeredis":
            # The notebooks kill worker processes and watch leases expire: they need a real server
            # that other processes can reach, not a thread of the pytest process that nbmake's kernels
            # would share only by luck.
            server.stop()
            raise pytest.UsageError("no redis-server/valkey-server binary: install redis-server")
        _server = server
    return _server.url


def _set_env(name: str, value: str) -> None:
    _saved_env.setdefault(name, os.environ.get(name))
    os.environ[name] = value


def _restore_env() -> None:
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env.clear()


def _is_notebook(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb" and NOTEBOOKS_DIR in item.path.parents


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _is_notebook(item):
        return
    _set_env("TASKQ_REDIS_URL", _notebook_url())
    paths = [str(NOTEBOOKS_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    _set_env("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _is_notebook(item):
        _restore_env()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
    _restore_env()
