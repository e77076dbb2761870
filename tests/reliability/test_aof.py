"""A hard kill of Redis with AOF ``appendfsync always`` loses no acknowledged enqueue (issue 17).

Runs benchmarks/aof_loss.py's round (the script that measures ``everysec`` and ``no`` too,
docs/RELIABILITY.md): producers enqueue as fast as they can, redis-server is SIGKILLed after a
count of acknowledgements, restarted on its AOF, and every acknowledged task is looked up.
"""

from __future__ import annotations

from pathlib import Path

import redis
from apps.procs import load_module

import taskq
from taskq.chaos import AofServer
from taskq.keys import GlobalKeys

aof_loss = load_module("benchmarks/aof_loss.py")


def test_appendfsync_always_loses_no_acknowledged_enqueue(tmp_path: Path) -> None:
    one = aof_loss.measure("always", tmp_path, producers=3, kill_after=600)
    assert one.appendfsync == "always"
    assert one.acked >= 600  # every producer stopped at the kill; none was still being waited for
    assert one.lost == 0 and one.lost_ms == 0


def test_the_count_finds_a_missing_record(tmp_path: Path) -> None:
    """The check the test above relies on does see a record that is gone."""
    server = AofServer(tmp_path)
    server.start()
    try:
        with taskq.TaskQueue(server.url, embedded=False) as tq:
            ids = [str(tq.enqueue(aof_loss.TASK_NAME, args=[n], queue=aof_loss.QUEUE, force=True).id) for n in range(5)]
        with redis.Redis(port=server.port) as r:
            r.delete(GlobalKeys().queue(aof_loss.QUEUE).task(ids[1]), GlobalKeys().queue(aof_loss.QUEUE).task(ids[3]))
        assert aof_loss.missing_ids(server.port, ids) == [ids[1], ids[3]]
    finally:
        server.stop()
