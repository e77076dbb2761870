"""How taskq connects to Redis: the socket options of every client it makes.

redis-py waits on a socket for ever unless told otherwise (5.x), or 5 s (8.x). A connection
that dies silently (packets dropped, no reset) would then stop whatever waits on it: a
worker's claim loop froze for good that way while its heartbeat, on a fresh connection,
kept reporting it alive. So every connection taskq makes has:

* an explicit **socket timeout**: a call on a dead connection fails (and is retried on a new
  one) instead of hanging. A worker's is derived from its lease
  (:func:`worker_socket_timeout_s`): a stalled call must fail well before the heartbeat that
  keeps the lease alive is late;
* a **connect timeout**, so a server that does not answer at all is reported, not waited on;
* **TCP keepalive** (probes after 10 s idle, every 5 s, 3 missed = dead where the OS lets us
  set them), so the kernel notices a peer that vanished from the network;
* a **health check**: a connection idle for longer than :data:`HEALTH_CHECK_S` is PINGed before
  it is used again.

A ``redis+cluster://`` URL (:mod:`taskq.cluster`) gets redis-py's ``RedisCluster`` (blocking or
asyncio) with the same options, from :func:`sync_client` / :func:`async_client`, the one place
every taskq client is made. (The blocking ``RedisCluster`` has no idle health check; its
socket timeout and keepalive stand in for it.)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.exceptions
import redis.sentinel
from redis.exceptions import AuthenticationError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskq.backoff import exponential_s
from taskq.cluster import ClusterAddress, is_cluster_url, is_sentinel_url, parse_cluster_url, parse_sentinel_url
from taskq.errors import AccessDenied, ServerUnavailable
from taskq.server import redact_url

#: Socket timeout of the producers' clients (TaskQueue, AsyncTaskQueue).
CLIENT_SOCKET_TIMEOUT_S = 10.0
#: The longest socket timeout a worker uses (a long lease); shorter leases get shorter ones.
WORKER_SOCKET_TIMEOUT_MAX_S = 5.0
#: The shortest: below it a busy server (a big claim, an fsync) would look dead.
WORKER_SOCKET_TIMEOUT_MIN_S = 0.5
#: Connecting: a server that does not complete the TCP handshake in this time is down.
CONNECT_TIMEOUT_S = 5.0
#: A connection idle for longer is PINGed before its next command.
HEALTH_CHECK_S = 15
#: TCP keepalive: first probe after this many idle seconds, then every interval, dead after count.
KEEPALIVE_IDLE_S = 10
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3


def keepalive_options() -> dict[int, int]:
    """The TCP keepalive timings, for the socket options this OS has (Linux has all three;
    macOS names the idle time TCP_KEEPALIVE; elsewhere the system defaults stand)."""
    options: dict[int, int] = {}
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    if idle is not None:
        options[idle] = KEEPALIVE_IDLE_S
    if hasattr(socket, "TCP_KEEPINTVL"):
        options[socket.TCP_KEEPINTVL] = KEEPALIVE_INTERVAL_S
    if hasattr(socket, "TCP_KEEPCNT"):
        options[socket.TCP_KEEPCNT] = KEEPALIVE_COUNT
    return options


def connection_options(url: str, socket_timeout_s: float = CLIENT_SOCKET_TIMEOUT_S) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url(url, ...)`` / ``redis.asyncio.Redis.from_url``
    (the same names in redis-py 5.0 to 8.x); a ``unix://`` socket has no TCP keepalive."""
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": min(CONNECT_TIMEOUT_S, max(socket_timeout_s, 1.0)),
        "health_check_interval": HEALTH_CHECK_S,
    }
    if not url.startswith("unix:"):
        options["socket_keepalive"] = True
        options["socket_keepalive_options"] = keepalive_options()
    return options


#: What redis-py raises when no node of a cluster answers (older redis-py: its base class).
CLUSTER_UNREACHABLE: tuple[type[Exception], ...] = (
    getattr(redis.exceptions, "RedisClusterUnreachableError", RedisClusterException),
)


_CLUSTER_DOWN: tuple[type[Exception], ...] = (*CLUSTER_UNREACHABLE, RedisConnectionError, RedisTimeoutError)


def _cluster_options(address: ClusterAddress) -> dict[str, Any]:
    options: dict[str, Any] = {"username": address.username, "password": address.password}
    if address.tls:
        options["ssl"] = True
    return options


def sync_client(url: str, socket_timeout_s: float = CLIENT_SOCKET_TIMEOUT_S) -> redis.Redis:
    """A blocking client for ``url`` (decoded replies): ``redis.Redis``, or ``RedisCluster`` for
    a cluster URL. Typed as ``redis.Redis``: taskq calls only the command methods both have, and
    branches where they differ with :func:`is_cluster`."""
    options = connection_options(url, socket_timeout_s)
    if is_sentinel_url(url):
        return _sentinel_client(redis.sentinel.Sentinel, url, options, decode=True)  # type: ignore[no-any-return]
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, decode_responses=True, **options)
    address = parse_cluster_url(url)
    options.pop("health_check_interval")  # the blocking RedisCluster does not take it
    try:  # the blocking RedisCluster reads the slot map here, not at its first command
        cluster = redis.cluster.RedisCluster(
            startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in address.nodes],  # type: ignore[no-untyped-call]
            decode_responses=True,
            **_cluster_options(address),
            **options,
        )
    except AuthenticationError as exc:
        raise AccessDenied(f"Redis at {redact_url(url)} refused the credentials: {exc}") from None
    except _CLUSTER_DOWN as exc:
        raise ServerUnavailable(f"cannot reach the Redis Cluster at {redact_url(url)}: {exc}") from None
    return cast(redis.Redis, cluster)


def async_client(url: str, socket_timeout_s: float = CLIENT_SOCKET_TIMEOUT_S, *, decode: bool = True) -> aioredis.Redis:
    """An asyncio client for ``url``: ``redis.asyncio.Redis``, or ``redis.asyncio.RedisCluster``
    for a cluster URL (typed as the former, as :func:`sync_client`)."""
    options = connection_options(url, socket_timeout_s)
    if is_sentinel_url(url):
        return _sentinel_client(aiosentinel.Sentinel, url, options, decode=decode)  # type: ignore[no-any-return]
    if not is_cluster_url(url):
        return aioredis.Redis.from_url(url, decode_responses=decode, **options)
    address = parse_cluster_url(url)
    cluster = aiocluster.RedisCluster(
        startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in address.nodes],
        decode_responses=decode,
        **_cluster_options(address),
        **options,
    )
    return cast(aioredis.Redis, cluster)


def _sentinel_client(kind: Any, url: str, options: dict[str, Any], *, decode: bool) -> Any:
    """The primary's client through a redis-py ``Sentinel`` (blocking or asyncio) for a
    ``redis+sentinel://`` URL: the Sentinels are asked for the primary (and asked again after a
    failover); the primary's connections get ``options`` and the URL's credentials and database,
    the Sentinels' the same timeouts. Closing the client closes the Sentinel connections too."""
    address = parse_sentinel_url(url)
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = kind(
        list(address.sentinels),
        sentinel_kwargs=timeouts,
        db=address.db,
        username=address.username,
        password=address.password,
        **({"ssl": True} if address.tls else {}),
        **options,
    )
    client = sentinel.master_for(address.service, decode_responses=decode)
    if kind is aiosentinel.Sentinel:
        close_primary = client.aclose

        async def aclose() -> None:
            await close_primary()
            for s in sentinel.sentinels:
                await s.aclose()

        client.aclose = aclose
    else:
        close_primary_sync = client.close

        def close() -> None:
            close_primary_sync()
            for s in sentinel.sentinels:
                s.close()

        client.close = close
    return client


def is_cluster(client: object) -> bool:
    """Whether ``client`` is a cluster client (blocking or asyncio)."""
    return isinstance(client, (redis.cluster.RedisCluster, aiocluster.RedisCluster))


def worker_socket_timeout_s(lease_s: float) -> float:
    """A worker's socket timeout: a quarter of the lease, within
    [:data:`WORKER_SOCKET_TIMEOUT_MIN_S`, :data:`WORKER_SOCKET_TIMEOUT_MAX_S`].

    The heartbeat runs every lease / 3 (at most lease / 2), so a heartbeat that meets a dead
    connection fails after a quarter of the lease and is retried on a fresh one while the
    lease still has time left: a dead connection does not make healthy tasks run twice.
    """
    return min(WORKER_SOCKET_TIMEOUT_MAX_S, max(WORKER_SOCKET_TIMEOUT_MIN_S, lease_s / 4))


#: Waiting for a server at start: the first retry after this long, doubling up to the max.
WAIT_FIRST_S = 0.5
WAIT_MAX_S = 10.0


async def wait_for_server(url: str, stopping: Callable[[], bool], log: logging.Logger) -> bool:
    """PING ``url`` until it answers, retrying with backoff (0.5 s doubling to 10 s) while
    the server is unreachable, and say so in one log line (the password redacted). False if
    ``stopping()`` turned true first. A server that answers but refuses us (a wrong password)
    is not waited for: its error is raised."""
    client = async_client(url, WAIT_MAX_S, decode=False)
    started = time.monotonic()
    attempt = 0
    try:
        while not stopping():
            try:
                await client.ping()
            except AuthenticationError as exc:  # the server is there, and no wait will change its mind
                raise AccessDenied(f"Redis at {redact_url(url)} refused the credentials: {exc}") from None
            except (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError) as exc:
                delay_s = exponential_s(attempt + 1, WAIT_FIRST_S, WAIT_MAX_S)
                if attempt == 0:
                    log.warning(
                        "Redis at %s is not reachable (%s); waiting for it, retrying every %g-%g s",
                        redact_url(url),
                        exc,
                        WAIT_FIRST_S,
                        WAIT_MAX_S,
                    )
                attempt += 1
                deadline = time.monotonic() + delay_s
                while time.monotonic() < deadline and not stopping():
                    await asyncio.sleep(min(0.1, delay_s))
                continue
            if attempt:
                log.info("Redis at %s is reachable after %.1f s", redact_url(url), time.monotonic() - started)
            return True
        return False
    finally:
        await client.aclose()


#: maxmemory policies that never drop a key taskq needs: none (writes fail instead).
SAFE_MEMORY_POLICIES = frozenset({"noeviction"})


async def warn_if_evicting(client: aioredis.Redis, log: logging.Logger) -> str | None:
    """Log a warning if the server's ``maxmemory-policy`` may evict keys (and so lose queued
    tasks, leases or results); the policy, or None where it cannot be read (a managed
    Redis, or an ACL user without ``CONFIG GET``: nothing to say then)."""
    try:
        reply = await client.config_get("maxmemory-policy")
    except Exception:  # noqa: BLE001 - only a warning; a refusal is not an error
        return None
    policy = str(reply.get("maxmemory-policy", "")) if isinstance(reply, dict) else ""
    if policy and policy not in SAFE_MEMORY_POLICIES:
        log.warning(
            "Redis maxmemory-policy is %s: when it reaches maxmemory it evicts keys and can lose tasks; "
            "set maxmemory-policy noeviction (writes are refused instead, as taskq.ServerFull)",
            policy,
        )
    return policy or None


__all__ = [
    "CLIENT_SOCKET_TIMEOUT_S",
    "async_client",
    "is_cluster",
    "sync_client",
    "warn_if_evicting",
    "wait_for_server",
    "connection_options",
    "keepalive_options",
    "worker_socket_timeout_s",
]
