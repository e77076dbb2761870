"""The executors' one speed trick, fenced here with a switch to turn it off: a single script call
(one enqueue, a claim, a batch of outcomes) skips redis-py's command layers.

What it does: the call is packed into RESP in one ``hiredis.pack_command`` call and
written straight to a pool connection, skipping ``execute_command``'s per-argument
encoding, observability hooks, retry wrapper and (sync) the pool checkout; script replies
need no response callback, so the raw reply is exactly what ``execute_command`` returns.
The blocking client keeps **one pool connection per thread** for these calls: it goes
back to the pool when the thread ends, a forked child checks out its own, and threads
hold at most half the pool's ``max_connections`` (past that, calls take the plain path,
so held connections never use up the pool). A lost connection falls back to
``execute_command``, which reconnects and retries as usual.

What it saves, measured with the switch (client CPU of the process, 4000 single
``tq.enqueue`` calls of a registered task on a local redis-server, two runs each, a shared
2-core machine): on 65-68 µs per enqueue, off 117-125 µs, so about 55 µs or 45 % of the
client cost of a single enqueue. A worker draining a queue gains little (its claims and
outcomes are batched: 44-49 µs against 45-57 µs per task in ``python -m
taskq_bench.telemetry --only drain``, within that machine's noise).

The switch: ``TASKQ_SPEEDUPS=0`` in the environment (read when a client is made), or
``speedups_on=False`` to an executor. Off, every command takes redis-py's ordinary path
(:mod:`taskq.executor` reads as plain redis-py); the tests run the core both ways.

The calls sent here are FCALL or EVALSHA, as the executor chose (:mod:`taskq.functions`); that
choice has its own switch, ``TASKQ_FUNCTIONS=0`` (every script call as EVALSHA), read the same
way when a client is made.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Set to 0 (or false, no, off) to turn the speedups off.
ENV_SWITCH = "TASKQ_SPEEDUPS"

_LOST = (RedisConnectionError, RedisTimeoutError)
#: redis-py 5.3 made ConnectionPool.get_connection's command name optional (then deprecated it).
_NO_COMMAND_NAME = tuple(int(p) for p in redis.__version__.split(".")[:2] if p.isdigit()) >= (5, 3)


def enabled() -> bool:
    """Whether the environment leaves the speedups on (the default)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


class _ThreadConnection:
    """A pool connection one thread keeps for its script calls."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pid = os.getpid()


class _Holds:
    """How many connections of one pool the threads of this process keep: at most half its
    ``max_connections`` (redis-py 8 defaults to 100). A thread past that makes its script
    calls the ordinary way, so held connections never use up the pool that other threads'
    calls check out of."""

    __slots__ = ("limit", "lock", "n", "pid")

    def __init__(self, max_connections: int) -> None:
        self.limit = max_connections // 2
        self.lock = threading.Lock()
        self.n = 0
        self.pid = os.getpid()

    def take(self) -> bool:
        if self.pid != os.getpid():  # a forked child holds none yet (and gets its own lock)
            self.lock, self.n, self.pid = threading.Lock(), 0, os.getpid()
        with self.lock:
            if self.n >= self.limit:
                return False
            self.n += 1
            return True

    def put_back(self, pid: int) -> None:
        if pid == self.pid == os.getpid():
            with self.lock:
                self.n -= 1

    def give_back(self, pool: Any, conn: Any, pid: int) -> None:
        self.put_back(pid)
        pool.release(conn)


class SyncScriptCalls:
    """Sends single script calls for a blocking ``redis.Redis`` client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._local = threading.local()
        self._holds = _Holds(int(getattr(client.connection_pool, "max_connections", None) or 0))

    def _connection(self) -> Any:
        """This thread's connection: checked out once (a checkout costs about as much as
        packing the call), handed back when the thread ends; a forked child takes a fresh
        one. ``close()`` of the client disconnects it like any other, and it reconnects on
        next use. None when half the pool is held already."""
        held: _ThreadConnection | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():
            holds = self._holds
            if not holds.take():
                return None
            pool = self.client.connection_pool
            try:
                conn = pool.get_connection() if _NO_COMMAND_NAME else pool.get_connection("EVALSHA")
            except BaseException:
                holds.put_back(os.getpid())
                raise
            held = _ThreadConnection(conn)
            weakref.finalize(held, holds.give_back, pool, conn, held.pid)
            self._local.held = held
        return held.conn

    def call(self, args: Sequence[Any]) -> Any:
        conn = self._connection()
        if conn is None:
            return self.client.execute_command(*args)  # type: ignore[no-untyped-call]
        try:
            conn.send_packed_command([hiredis.pack_command(tuple(args))])
            return conn.read_response()
        except _LOST:
            conn.disconnect()
            return self.client.execute_command(*args)  # type: ignore[no-untyped-call]


class AsyncScriptCalls:
    """Sends single script calls for a ``redis.asyncio.Redis`` client: one pool connection
    per call. A read cancelled half way disconnects the connection (redis-py does), so no
    reply is left behind for the next user."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def call(self, args: Sequence[Any]) -> Any:
        pool = self.client.connection_pool
        if _NO_COMMAND_NAME:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        else:
            conn = await pool.get_connection("EVALSHA")  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command([hiredis.pack_command(tuple(args))])
            return await conn.read_response()
        except _LOST:
            await conn.disconnect()
            return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            await pool.release(conn)


__all__ = ["ENV_SWITCH", "AsyncScriptCalls", "SyncScriptCalls", "enabled"]
