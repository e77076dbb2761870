"""pytest --nbmake notebooks/: give the notebook kernels a private Redis.

Before the first notebook runs, a redis-server (or valkey-server) is started on a free port; while
each notebook runs, its URL is in ``TASKQ_REDIS_URL``, which the kernel (a subprocess of pytest)
inherits, so ``taskq.TaskQueue()`` in a notebook finds it before anything else. A URL already set by
the caller (e.g. CI with its own service) is used as it is. The variable is set only around notebook
items, so the tests under tests/ (same session) never see it. The machine's Redis on
localhost:6379 is never touched: with the variable set, taskq does not probe it. The notebooks
directory goes on ``PYTHONPATH`` so that worker subprocesses started by a notebook can import
``nbtasks``.

Each notebook also gets a private temporary directory (``TMPDIR``, inherited by its kernel and
the workers it starts), and fails if it leaves anything behind there: a notebook cleans up the
folders and files it makes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

from taskq import EmbeddedServer

NOTEBOOKS_DIR = Path(__file__).resolve().parent
# As the caller set it. When tests/ is collected too, its conftest has already removed it (tests
# never follow the environment to a server), and the notebooks get a private server.
_CALLER_URL = os.environ.get("TASKQ_REDIS_URL")
_server: EmbeddedServer | None = None
_saved_env: dict[str, str | None] = {}
# This process keeps the system's temporary directory (read it now, before TMPDIR changes).
_SYSTEM_TMP = tempfile.gettempdir()
_notebook_tmp: dict[str, Path] = {}


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
    tmp = Path(tempfile.mkdtemp(prefix="nb-tmp-", dir=_SYSTEM_TMP))
    _notebook_tmp[item.nodeid] = tmp
    _set_env("TMPDIR", str(tmp))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A notebook that ran to the end fails if it left files or folders in its temporary directory."""
    result = yield
    tmp = _notebook_tmp.get(item.nodeid)
    if tmp is not None:
        left = sorted(p.name for p in tmp.iterdir())
        assert not left, f"the notebook left these in its temporary directory: {left}"
    return result


def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _is_notebook(item):
        _restore_env()
        tmp = _notebook_tmp.pop(item.nodeid, None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
    _restore_env()
