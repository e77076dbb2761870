"""Redis Cluster URLs: ``redis+cluster://[user:password@]host:port[,host:port...]``.

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


def _node(text: str) -> tuple[str, int]:
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
        return host, DEFAULT_PORT
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
    """Why ``url`` is not a usable cluster URL (quoting it as ``shown``, password redacted), or None."""
    try:
        parse_cluster_url(url)
    except ClusterURLError as exc:
        return f"bad Redis Cluster URL {shown!r}: {exc}; {EXAMPLE}"
    return None


__all__ = ["CLUSTER_SCHEMES", "ClusterAddress", "ClusterURLError", "cluster_url_problem", "is_cluster_url"]
