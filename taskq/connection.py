"""Executors: send a :class:`~taskq.ops.Plan`'s commands (one call, or one pipeline) and
parse the replies. One sync and one async, sharing every decision but the I/O.

A reply of NOSCRIPT (the server restarted or its script cache was flushed) is healed
here: the scripts are loaded again and only the commands that failed are re-sent. A
command that got NOSCRIPT did not run, so nothing runs twice.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq.errors import ServerUnavailable
from taskq.ops import reply_error
from taskq.plan import Command, Flow, Plan

__all__ = ["AsyncExecutor", "Flow", "SyncExecutor"]
from taskq.scripts import Script

T = TypeVar("T")


def _scripts_to_load(commands: Sequence[Command], replies: Sequence[Any]) -> dict[str, Script]:
    missing: dict[str, Script] = {}
    for cmd, reply in zip(commands, replies, strict=True):
        if isinstance(reply, NoScriptError) and cmd.script is not None:
            missing[cmd.script.sha] = cmd.script
    return missing


def _merge(replies: list[Any], retried: list[int], again: list[Any]) -> list[Any]:
    for i, reply in zip(retried, again, strict=True):
        replies[i] = reply
    return replies


def _finish(plan: Plan[T], replies: list[Any]) -> T:
    if not plan.errors_inline:
        for reply in replies:
            err = reply_error(reply)
            if err is not None:
                raise err
    return plan.parse(replies)


_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_LOST = (RedisConnectionError, RedisTimeoutError)


def _pack_py(args: Sequence[Any]) -> bytes:
    """RESP for ``args`` (str, bytes, int, float), where hiredis is not installed."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else (arg if isinstance(arg, str) else repr(arg)).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def _resp_packer() -> Callable[[Any], bytes]:
    try:
        import hiredis
    except ImportError:  # redis[hiredis] brings it; plain redis-py works too
        return _pack_py
    return hiredis.pack_command


_pack = _resp_packer()
#: redis-py 5.3 made ConnectionPool.get_connection's command name optional (then deprecated it).
_NO_COMMAND_NAME = tuple(int(p) for p in redis.__version__.split(".")[:2] if p.isdigit()) >= (5, 3)


def _packed(cmd: Command) -> bytes:
    """The command in RESP, packed in one call: a script call skips the generic
    per-argument encoding of redis-py's ``execute_command``, most of the client cost of a
    single enqueue. Script replies need no response callback, so reading the raw reply
    gives exactly what ``execute_command`` would."""
    return _pack(cmd.args)


def _unavailable(url: str, exc: Exception) -> ServerUnavailable:
    return ServerUnavailable(f"cannot reach Redis at {url}: {exc}")


class _ThreadConnection:
    """A pool connection one thread keeps for its script calls (see SyncExecutor)."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pid = os.getpid()


class _Holds:
    """How many connections of one pool the threads of this process keep (SyncExecutor): at
    most half its ``max_connections`` (redis-py 8 defaults to 100). A thread past that makes
    its script calls the ordinary way, so held connections never use up the pool that other
    threads' calls check out of (a thread that holds none then gets MaxConnectionsError)."""

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


class SyncExecutor:
    """Runs plans on a blocking ``redis.Redis`` client."""

    def __init__(self, client: redis.Redis, url: str) -> None:
        self.client = client
        self.url = url
        self._local = threading.local()
        self._holds = _Holds(int(getattr(client.connection_pool, "max_connections", None) or 0))

    def _script_connection(self) -> Any:
        """This thread's connection for script calls: checked out of the client's pool once
        (a checkout costs about as much as packing the call), handed back when the thread
        ends; a forked child takes a fresh one. ``close()`` of the client disconnects it
        like any other, and it reconnects on next use. None when half the pool is held
        already (see _Holds): the call then takes the ordinary path."""
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

    def run(self, plan: Plan[T]) -> T:
        try:
            replies = self._send(plan.commands)
            missing = _scripts_to_load(plan.commands, replies)
            if missing:
                for script in missing.values():
                    self.client.execute_command("SCRIPT", "LOAD", script.source)  # type: ignore[no-untyped-call]
                retry = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
                replies = _merge(replies, retry, self._send([plan.commands[i] for i in retry]))
        except _UNAVAILABLE as exc:
            raise _unavailable(self.url, exc) from exc
        return _finish(plan, replies)

    def _send(self, commands: Sequence[Command]) -> list[Any]:
        if len(commands) == 1:
            cmd = commands[0]
            try:
                if cmd.script is not None:
                    return [self._send_script(cmd)]
                return [self.client.execute_command(*cmd.args)]  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for cmd in commands:
            pipe.execute_command(*cmd.args)  # type: ignore[no-untyped-call]
        return list(pipe.execute(raise_on_error=False))

    def _send_script(self, cmd: Command) -> Any:
        """One script call without redis-py's per-command layers (argument encoding,
        observability, retry wrapper, pool checkout). A lost connection falls back to
        ``execute_command``, which reconnects and retries as before."""
        conn = self._script_connection()
        if conn is None:
            return self.client.execute_command(*cmd.args)  # type: ignore[no-untyped-call]
        try:
            conn.send_packed_command([_packed(cmd)])
            return conn.read_response()
        except _LOST:
            conn.disconnect()
            return self.client.execute_command(*cmd.args)  # type: ignore[no-untyped-call]

    def drive(self, flow: Flow[T]) -> T:
        """Run a flow to its end: plans are executed, floats are slept."""
        reply: Any = None
        try:
            while True:
                step = flow.send(reply)
                if isinstance(step, Plan):
                    reply = self.run(step)
                else:
                    time.sleep(step)
                    reply = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


class AsyncExecutor:
    """Runs plans on a ``redis.asyncio.Redis`` client."""

    def __init__(self, client: aioredis.Redis, url: str) -> None:
        self.client = client
        self.url = url

    async def run(self, plan: Plan[T]) -> T:
        try:
            replies = await self._send(plan.commands)
            missing = _scripts_to_load(plan.commands, replies)
            if missing:
                for script in missing.values():
                    await self.client.execute_command("SCRIPT", "LOAD", script.source)  # type: ignore[no-untyped-call]
                retry = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
                again = await self._send([plan.commands[i] for i in retry])
                replies = _merge(replies, retry, again)
        except _UNAVAILABLE as exc:
            raise _unavailable(self.url, exc) from exc
        return _finish(plan, replies)

    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        if len(commands) == 1:
            cmd = commands[0]
            try:
                if cmd.script is not None:
                    return [await self._send_script(cmd)]
                return [await self.client.execute_command(*cmd.args)]  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for cmd in commands:
            pipe.execute_command(*cmd.args)
        return list(await pipe.execute(raise_on_error=False))

    async def _send_script(self, cmd: Command) -> Any:
        """See :meth:`SyncExecutor._send_script`. A read cancelled half way disconnects
        the connection (redis-py does), so no reply is left behind for the next user."""
        pool = self.client.connection_pool
        if _NO_COMMAND_NAME:
            conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        else:
            conn = await pool.get_connection("EVALSHA")  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command([_packed(cmd)])
            return await conn.read_response()
        except _LOST:
            await conn.disconnect()
            return await self.client.execute_command(*cmd.args)  # type: ignore[no-untyped-call]
        finally:
            await pool.release(conn)

    async def drive(self, flow: Flow[T]) -> T:
        reply: Any = None
        try:
            while True:
                step = flow.send(reply)
                if isinstance(step, Plan):
                    reply = await self.run(step)
                else:
                    await asyncio.sleep(step)
                    reply = None
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
