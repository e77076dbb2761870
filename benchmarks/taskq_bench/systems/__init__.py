"""The systems under test: one adapter module each, and the Python that runs each one.

taskq runs in the Python that runs the harness; the peers run in the isolated virtualenvs
built by ``benchmarks/setup_peers.sh``, because their pins conflict with taskq's
development environment and with each other (arq needs ``redis<6``, taskiq-redis
``redis>=8``): ``.venv-bench`` for most, ``.venv-bench-taskiq`` for taskiq. They live in
the repository root, or in ``BENCH_VENV_DIR``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

from taskq_bench.systems.base import ROOT, Adapter

SYSTEMS: tuple[str, ...] = ("taskq", "rq", "arq", "saq", "celery", "dramatiq", "huey", "taskiq")
PEERS: tuple[str, ...] = SYSTEMS[1:]
VENV_DIR_ENV = "BENCH_VENV_DIR"
DEFAULT_VENV = ".venv-bench"
#: Peers that need a virtualenv of their own.
OWN_VENV: dict[str, str] = {"taskiq": ".venv-bench-taskiq"}


def venv_dir() -> Path:
    return Path(os.environ.get(VENV_DIR_ENV) or ROOT)


def python_for(system: str) -> str:
    """The interpreter that runs ``system``'s producers and workers (for a peer it may not
    exist: the peer is then reported as unable to run)."""
    check_name(system)
    if system == "taskq":
        return sys.executable
    return str(venv_dir() / OWN_VENV.get(system, DEFAULT_VENV) / "bin" / "python")


def check_name(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; known: {', '.join(SYSTEMS)}")


def load_module(system: str) -> ModuleType:
    """Import ``taskq_bench.systems.<system>`` (needs the system's library installed)."""
    check_name(system)
    return importlib.import_module(f"taskq_bench.systems.{system}")


def load_adapter(system: str, url: str) -> Adapter:
    adapter_class: type[Adapter] = load_module(system).ADAPTER
    return adapter_class(url)


__all__ = ["PEERS", "SYSTEMS", "check_name", "load_adapter", "load_module", "python_for", "venv_dir"]
