"""Fixtures of the cluster tests: ``tq`` is a TaskQueue on the session's 3-master cluster
(flushed for each test), so the shared ``workers`` fixture starts its workers there too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import taskq


@pytest.fixture
def tq(cluster_url: str) -> Iterator[taskq.TaskQueue]:
    with taskq.TaskQueue(cluster_url) as queue:
        yield queue
