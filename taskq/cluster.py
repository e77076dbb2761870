"""Redis Cluster and Sentinel URLs.

``redis+cluster://[user:password@]host:port[,host:port...]`` names a Redis Cluster;
``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`` names the Sentinels
that watch the primary called ``service`` (the credentials are the primary's).

A cluster URL names one or more *startup nodes*; redis-py's ``RedisCluster`` (blocking and
asyncio) asks any of them for the slot map and then talks to every master itself. ``rediss+``
(TLS) and the ``valkey+cluster`` / ``valkeys+cluster`` spellings are accepted too. A cluster
has database 0 only, so a path other than ``/`` or ``/0`` is refused, as is a query string.

This module only parses; :mod:`taskq.connection` makes the clients. It imports nothing of
taskq, so :mod:`taskq.server` (the URL check) and :mod:`taskq.connection` can both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

#: The schemes of a cluster URL, and whether each is TLS.
CLUSTER_SCHEMES = {
    "redis+cluster": False,
    "rediss+cluster": True,
    "valkey+cluster": False,
    "valkeys+cluster": True,
}
DEFAULT_PORT = 6379
EXAMPLE = "e.g. redis+cluster://host1:7000,host2:7001"


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """What a cluster URL says: the startup nodes, the credentials and whether to use TLS."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool


class ClusterURLError(ValueError):
    """A cluster URL taskq cannot use; the message names the fault, never the password."""


def is_cluster_url(url: object) -> bool:
    """Whether ``url`` is a cluster URL (by its scheme only)."""
    return isinstance(url, str) and url.partition("://")[0].lower() in CLUSTER_SCHEMES


def _node(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    if text.startswith("["):  # an IPv6 literal: [::1]:7000
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ClusterURLError("a malformed host")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ClusterURLError("no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ClusterURLError("the port is not a number in 1..65535")
    return host, int(port_text)


def parse_cluster_url(url: str) -> ClusterAddress:
    """The startup nodes, credentials and TLS flag of a cluster URL, or :class:`ClusterURLError`."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise ClusterURLError("not a cluster URL")
    netloc, _, tail = rest.partition("/")
    netloc, qmark, _ = netloc.partition("?")
    path, qmark2, _ = tail.partition("?")
    if qmark or qmark2:
        raise ClusterURLError("query options are not supported in a cluster URL")
    if path not in ("", "0"):
        raise ClusterURLError("a cluster has database 0 only")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not hosts:
        raise ClusterURLError("no host")
    nodes = tuple(_node(part.strip()) for part in hosts.split(","))
    return ClusterAddress(nodes, username, password, CLUSTER_SCHEMES[scheme.lower()])


def cluster_url_problem(url: str, shown: str) -> str | None:
    """Why ``url`` is not a usable cluster or Sentinel URL (quoting it as ``shown``, password
    redacted), or None."""
    try:
        if is_sentinel_url(url):
            parse_sentinel_url(url)
        else:
            parse_cluster_url(url)
    except ClusterURLError as exc:
        kind, example = ("Sentinel", SENTINEL_EXAMPLE) if is_sentinel_url(url) else ("Redis Cluster", EXAMPLE)
        return f"bad {kind} URL {shown!r}: {exc}; {example}"
    return None


#: The schemes of a Sentinel URL, and whether each is TLS.
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True, "valkey+sentinel": False}
SENTINEL_EXAMPLE = "e.g. redis+sentinel://host1:26379,host2:26379/mymaster"


@dataclass(frozen=True, slots=True)
class SentinelAddress:
    """What a Sentinel URL says: the Sentinels, the primary's name and database, credentials, TLS."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool


def is_sentinel_url(url: object) -> bool:
    """Whether ``url`` is a Sentinel URL (by its scheme only)."""
    return isinstance(url, str) and url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The Sentinels, service, db, credentials and TLS flag of a Sentinel URL, or :class:`ClusterURLError`."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES or "?" in rest:
        raise ClusterURLError("not a Sentinel URL (query options are not supported)")
    netloc, _, path = rest.partition("/")
    service, _, db_text = path.partition("/")
    if not service:
        raise ClusterURLError("no service name (the primary's name the Sentinels monitor)")
    if db_text and not db_text.isdigit():
        raise ClusterURLError("the database is not a number")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = unquote(user) or None, (unquote(secret) if colon else None)
    if not hosts:
        raise ClusterURLError("no host")
    sentinels = tuple(_node(part.strip(), 26379) for part in hosts.split(","))
    return SentinelAddress(sentinels, service, int(db_text or 0), username, password, SENTINEL_SCHEMES[scheme.lower()])


__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterAddress",
    "ClusterURLError",
    "SentinelAddress",
    "cluster_url_problem",
    "is_cluster_url",
    "is_sentinel_url",
    "parse_sentinel_url",
]
