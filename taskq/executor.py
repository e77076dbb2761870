"""Executors: send a :class:`~taskq.plan.Plan`'s commands (one call, or one pipeline) and
parse the replies; drive flows (:data:`~taskq.plan.Flow`) and streams. One sync and one
async, sharing every decision but the I/O.

Script calls go as FCALL of taskq's Redis Functions library where the server has it, else as
EVALSHA (:mod:`taskq.functions`: each executor loads the library before its first plan, on
every master of a cluster). A reply of NOSCRIPT or "Function not found" (the server restarted,
its scripts or functions were flushed, a cluster master is new) is healed here: the scripts or
the library are loaded again and only the commands that failed are re-sent (and the plan's
``WAIT`` s, which waited for nothing: :mod:`taskq.durable`). A command that got either reply
did not run, so nothing runs twice.

On a Redis Cluster, a plan whose commands name a ``node_key`` (a durable enqueue) is sent
one pipeline per master, each on one connection to it, not through the cluster client's
routing; a slot that moved meanwhile (MOVED, ASK) is :class:`~taskq.errors.ServerUnavailable`,
after the cluster client has been made to read the new slot map.

Everything here is plain redis-py. The one speed trick (single script calls that skip
redis-py's command layers) lives in :mod:`taskq.speedups`, with its switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.exceptions import AskError, AuthenticationError, ClusterError, MovedError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq import functions, speedups
from taskq.connection import CLUSTER_UNREACHABLE, is_cluster
from taskq.errors import AccessDenied, ServerUnavailable
from taskq.functions import FunctionCalls, function_missing
from taskq.ops_base import reply_error
from taskq.plan import Command, Emit, Flow, Plan, Stream
from taskq.scripts import Script
from taskq.server import redact_url

__all__ = ["AsyncExecutor", "Flow", "SyncExecutor"]

T = TypeVar("T")


def _scripts_to_load(commands: Sequence[Command], replies: Sequence[Any], fcall: bool) -> dict[str, Script]:
    """The scripts to SCRIPT LOAD: those that got NOSCRIPT, and those whose function was not
    found when the executor no longer uses functions (``fcall`` False: the load failed)."""
    missing: dict[str, Script] = {}
    for cmd, reply in zip(commands, replies, strict=True):
        lost = isinstance(reply, NoScriptError) or (not fcall and function_missing(reply))
        if lost and cmd.script is not None:
            missing[cmd.script.sha] = cmd.script
    return missing


def _not_run(reply: Any) -> bool:
    return isinstance(reply, NoScriptError) or function_missing(reply)


def _to_resend(commands: Sequence[Command], replies: Sequence[Any]) -> list[int]:
    """The commands to send again once the missing scripts or functions are loaded: those that
    got NOSCRIPT or "Function not found" and, if any did, every ``WAIT`` (it answered at once
    for a call that did not run)."""
    failed = [i for i, r in enumerate(replies) if _not_run(r)]
    return sorted({*failed, *(i for i, c in enumerate(commands) if c.args[0] == "WAIT")}) if failed else []


def _reply(call: Any, *args: Any) -> Any:
    """``call(*args)``'s reply, or the error the server answered (a reply like any other)."""
    try:
        return call(*args)
    except ResponseError as exc:
        return exc


async def _areply(call: Any, *args: Any) -> Any:
    try:
        return await call(*args)
    except ResponseError as exc:
        return exc


def _merge(commands: Sequence[Command], replies: list[Any], retried: list[int], again: list[Any]) -> list[Any]:
    for i, reply in zip(retried, again, strict=True):
        first = replies[i]
        both_counts = isinstance(first, int) and isinstance(reply, int)  # a WAIT sent twice: the fewer replicas
        replies[i] = min(first, reply) if commands[i].args[0] == "WAIT" and both_counts else reply
    return replies


def _by_node(key_node: Any, commands: Sequence[Command]) -> dict[str, tuple[Any, list[int]]]:
    """The commands' indexes grouped by the master owning each one's ``node_key`` (``key_node``:
    the cluster client's ``get_node_from_key``), in order."""
    groups: dict[str, tuple[Any, list[int]]] = {}
    for i, cmd in enumerate(commands):
        node = key_node(cmd.node_key)
        groups.setdefault(node.name, (node, []))[1].append(i)
    return groups


def _moved(url: str, replies: Sequence[Any]) -> ServerUnavailable | None:
    reply = next((r for r in replies if isinstance(r, (MovedError, AskError))), None)
    if reply is None:
        return None
    return ServerUnavailable(f"Redis Cluster at {redact_url(url)} moved a slot, nothing more was sent: {reply}")


def _all_values(replies: Sequence[Any]) -> bool:
    """No reply is an error: then no command is to be sent again (:func:`_to_resend`) and
    :func:`_finish` raises nothing, so the plan's parse is all that is left."""
    if len(replies) == 1:  # one call, most of them: asked without a generator
        return not isinstance(replies[0], Exception)
    return not any(isinstance(reply, Exception) for reply in replies)


def _finish(plan: Plan[T], replies: list[Any]) -> T:
    if not plan.errors_inline:
        for reply in replies:
            err = reply_error(reply)
            if err is not None:
                raise err
    return plan.parse(replies)


#: ClusterError: redis-py gave up following a cluster's redirections (a slot moving, a failover).
_UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    ClusterError,
    *CLUSTER_UNREACHABLE,
)
_LOST = (RedisConnectionError, RedisTimeoutError)


def _unavailable(url: str, exc: Exception) -> ServerUnavailable | AccessDenied:
    if isinstance(exc, AuthenticationError):  # a ConnectionError to redis-py, but no retry will help
        return AccessDenied(f"Redis at {redact_url(url)} refused the credentials: {exc}")
    return ServerUnavailable(f"cannot reach Redis at {redact_url(url)}: {exc}")  # never the password


class SyncExecutor:
    """Runs plans on a blocking ``redis.Redis`` client. ``speedups_on``: None follows the
    environment (:func:`taskq.speedups.enabled`)."""

    def __init__(
        self, client: redis.Redis, url: str, *, speedups_on: bool | None = None, functions_on: bool | None = None
    ) -> None:
        self.client = client
        self.url = url
        on = speedups.enabled() if speedups_on is None else speedups_on
        # a cluster client routes each call by its key's slot: no connection to write to directly
        self._scripts = speedups.SyncScriptCalls(client) if on and not is_cluster(client) else None
        self._cluster = is_cluster(client)
        self._fn = FunctionCalls(functions.enabled() if functions_on is None else functions_on)

    def run(self, plan: Plan[T]) -> T:
        try:
            if self._fn.on is None:
                self._load_library()
            replies = self._send(plan.commands)
            clean = _all_values(replies)  # most of the time: nothing to heal, resend or raise
            retry = [] if clean else _to_resend(plan.commands, replies)
            if retry:
                self._heal(plan.commands, replies)
                again = self._send([plan.commands[i] for i in retry])
                replies = _merge(plan.commands, replies, retry, again)
        except _UNAVAILABLE as exc:
            raise _unavailable(self.url, exc) from exc
        return plan.parse(replies) if clean else _finish(plan, replies)

    def _heal(self, commands: Sequence[Command], replies: Sequence[Any]) -> None:
        if any(function_missing(r) for r in replies):
            self._load_library()
        for script in _scripts_to_load(commands, replies, bool(self._fn.on)).values():
            self.client.execute_command("SCRIPT", "LOAD", script.source)  # type: ignore[no-untyped-call]

    def _load_library(self) -> None:
        """FUNCTION LOAD and its check on the server, or on every master of a cluster."""
        nodes = [self.client]
        if self._cluster:
            cluster = cast(redis.cluster.RedisCluster, self.client)
            nodes = [cluster.get_redis_connection(node) for node in cluster.get_primaries()]  # type: ignore[no-untyped-call]
        self._fn.loaded([_reply(node.execute_command, *args) for node in nodes for args in self._fn.load_commands])

    def _send(self, commands: Sequence[Command]) -> list[Any]:
        if self._cluster and commands and commands[0].node_key is not None:
            return self._send_on_nodes(commands)
        wire = self._fn.args
        if len(commands) == 1:
            cmd = commands[0]
            try:
                if cmd.script is not None and self._scripts is not None:
                    return [self._scripts.call(wire(cmd))]
                return [self.client.execute_command(*wire(cmd))]  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for cmd in commands:
            pipe.execute_command(*wire(cmd))  # type: ignore[no-untyped-call]
        return list(pipe.execute(raise_on_error=False))

    def _send_on_nodes(self, commands: Sequence[Command]) -> list[Any]:
        """Each master's commands in one pipeline on one of its connections (module docstring)."""
        cluster = cast(redis.cluster.RedisCluster, self.client)
        replies: list[Any] = [None] * len(commands)
        for node, indexes in _by_node(cluster.get_node_from_key, commands).values():
            pipe = cluster.get_redis_connection(node).pipeline(transaction=False)
            for i in indexes:
                pipe.execute_command(*self._fn.args(commands[i]))  # type: ignore[no-untyped-call]
            try:
                got = pipe.execute(raise_on_error=False)
            except _UNAVAILABLE:
                self._follow(commands[indexes[0]].node_key)
                raise
            for i, reply in zip(indexes, got, strict=True):
                replies[i] = reply
        moved = _moved(self.url, replies)
        if moved is not None:
            self._follow(commands[0].node_key)
            raise moved
        return replies

    def _follow(self, key: str | None) -> None:
        """Touch ``key`` through the cluster client, so it follows a moved slot or a failover
        and reads the new slot map (which the per-node sends route by)."""
        with contextlib.suppress(Exception):
            self.client.exists(str(key))

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

    def stream(self, flow: Stream[T]) -> Iterator[T]:
        """Run a streaming flow, handing out what it emits as it comes."""
        reply: Any = None
        with contextlib.closing(flow):
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration:
                    return
                reply = None
                if isinstance(step, Plan):
                    reply = self.run(step)
                elif isinstance(step, Emit):
                    yield from step.items
                else:
                    time.sleep(step)


class AsyncExecutor:
    """Runs plans on a ``redis.asyncio.Redis`` client. ``speedups_on``: as for
    :class:`SyncExecutor`."""

    def __init__(
        self, client: aioredis.Redis, url: str, *, speedups_on: bool | None = None, functions_on: bool | None = None
    ) -> None:
        self.client = client
        self.url = url
        on = speedups.enabled() if speedups_on is None else speedups_on
        self._scripts = speedups.AsyncScriptCalls(client) if on and not is_cluster(client) else None
        self._cluster = is_cluster(client)
        self._fn = FunctionCalls(functions.enabled() if functions_on is None else functions_on)

    async def run(self, plan: Plan[T]) -> T:
        try:
            if self._fn.on is None:
                await self._load_library()
            replies = await self._send(plan.commands)
            clean = _all_values(replies)
            retry = [] if clean else _to_resend(plan.commands, replies)
            if retry:
                await self._heal(plan.commands, replies)
                again = await self._send([plan.commands[i] for i in retry])
                replies = _merge(plan.commands, replies, retry, again)
        except _UNAVAILABLE as exc:
            raise _unavailable(self.url, exc) from exc
        return plan.parse(replies) if clean else _finish(plan, replies)

    async def _heal(self, commands: Sequence[Command], replies: Sequence[Any]) -> None:
        if any(function_missing(r) for r in replies):
            await self._load_library()
        for script in _scripts_to_load(commands, replies, bool(self._fn.on)).values():
            await self.client.execute_command("SCRIPT", "LOAD", script.source)  # type: ignore[no-untyped-call]

    async def _load_library(self) -> None:
        """As :meth:`SyncExecutor._load_library`."""
        if not self._cluster:
            self._fn.loaded([await _areply(self._execute, args) for args in self._fn.load_commands])
            return
        cluster = cast(aiocluster.RedisCluster, self.client)
        await cluster.initialize()
        load = self._fn.load_commands
        self._fn.loaded([await _areply(n.execute_command, *args) for n in cluster.get_primaries() for args in load])

    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        if self._cluster and commands and commands[0].node_key is not None:
            return await self._send_on_nodes(commands)
        wire = self._fn.args
        if len(commands) == 1:
            cmd = commands[0]
            try:
                if cmd.script is not None and self._scripts is not None:
                    return [await self._scripts.call(wire(cmd))]
                return [await self._execute(wire(cmd))]
            except ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for cmd in commands:
            pipe.execute_command(*wire(cmd))
        return list(await pipe.execute(raise_on_error=False))

    async def _send_on_nodes(self, commands: Sequence[Command]) -> list[Any]:
        """As :meth:`SyncExecutor._send_on_nodes`: a node's ``execute_pipeline`` sends its
        commands on one connection."""
        cluster = cast(aiocluster.RedisCluster, self.client)
        await cluster.initialize()  # the slot map, if no command read it yet
        replies: list[Any] = [None] * len(commands)
        for node, indexes in _by_node(cluster.get_node_from_key, commands).values():
            batch = [aiocluster.PipelineCommand(i, *self._fn.args(commands[i])) for i in indexes]
            try:
                await node.execute_pipeline(batch)
            except _UNAVAILABLE:
                await self._follow(commands[indexes[0]].node_key)
                raise
            for i, cmd in zip(indexes, batch, strict=True):
                replies[i] = cmd.result
        moved = _moved(self.url, replies)
        if moved is not None:
            await self._follow(commands[0].node_key)
            raise moved
        return replies

    async def _follow(self, key: str | None) -> None:
        with contextlib.suppress(Exception):
            await self.client.exists(str(key))

    async def _execute(self, args: Sequence[Any]) -> Any:
        """``execute_command``, tried once more on a lost connection: redis-py's asyncio
        client has no retry by default (the blocking one retries 3 times), and a connection
        the server closed must not fail the call when a new one would do."""
        try:
            return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]
        except _LOST:
            return await self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def drive(self, flow: Flow[T]) -> T:
        """Run a flow to its end: plans are executed, floats are slept."""
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

    async def stream(self, flow: Stream[T]) -> AsyncGenerator[T, None]:
        """Run a streaming flow, handing out what it emits as it comes. To stop early, close
        the iterator (``contextlib.aclosing``)."""
        reply: Any = None
        with contextlib.closing(flow):
            while True:
                try:
                    step = flow.send(reply)
                except StopIteration:
                    return
                reply = None
                if isinstance(step, Plan):
                    reply = await self.run(step)
                elif isinstance(step, Emit):
                    for item in step.items:
                        yield item
                else:
                    await asyncio.sleep(step)
