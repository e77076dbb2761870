"""Fixtures of the widget tests: ``lab``, a JupyterLab server on the test's Redis (labharness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from labharness import Lab, start_lab


@pytest.fixture
def lab(tmp_path: Path, redis_url: str) -> Iterator[Lab]:
    """JupyterLab on a free port, kernels pointed at the test Redis; shut down afterwards."""
    with start_lab(tmp_path, redis_url) as server:
        yield server
