"""A real Redis Cluster for the tests: three masters on free loopback ports, each
``redis-server --cluster-enabled yes`` with its own directory and config file, joined by
``redis-cli --cluster create``. Started once per session (tests/conftest.py, ``redis_cluster``)
and stopped with it; each server also dies with the test process (PR_SET_PDEATHSIG).

``LocalCluster(replicas=1)`` gives every master a replica (6 nodes) and waits until each replica
is in sync, for the failover tests (tests/cluster/test_cluster_failover.py), which start their own
and kill a master with :meth:`LocalCluster.kill_master`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from taskq.connection import sync_client
from taskq.server import die_with_parent_hook, free_port, ping

#: Longest wait for the servers to answer and the cluster to agree on its slots.
START_TIMEOUT_S = 30.0
CONFIG = """port {port}
cluster-port {bus}
bind 127.0.0.1
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout {node_timeout_ms}
dir {dir}
save ""
appendonly no
protected-mode no
"""


class LocalCluster:
    """``masters`` redis-server processes made into one cluster, each with ``replicas`` replicas;
    :attr:`url` is its taskq URL. ``node_timeout_ms`` is ``cluster-node-timeout``: how long a
    master may be silent before it is failed and a replica of it promoted."""

    def __init__(
        self, masters: int = 3, binary: str | None = None, *, replicas: int = 0, node_timeout_ms: int = 2000
    ) -> None:
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.cli = shutil.which("redis-cli") or "redis-cli"
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        nodes = masters * (1 + replicas)
        ports = distinct_free_ports(2 * nodes)  # each node's port and cluster bus port
        self.ports, self.bus_ports = ports[:nodes], ports[nodes:]
        self.root = Path(tempfile.mkdtemp(prefix="taskq-cluster-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> LocalCluster:
        try:
            for port, bus in zip(self.ports, self.bus_ports, strict=True):
                node_dir = self.root / str(port)
                node_dir.mkdir()
                config = node_dir / "redis.conf"
                config.write_text(CONFIG.format(port=port, bus=bus, dir=node_dir, node_timeout_ms=self.node_timeout_ms))
                with (node_dir / "log").open("wb") as log:  # the child keeps its own descriptor
                    self.procs.append(
                        subprocess.Popen(
                            [self.binary, str(config)],
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent_hook(),
                        )
                    )
            self._wait(lambda: all(ping("127.0.0.1", p) for p in self.ports), "the servers to answer")
            nodes = [f"127.0.0.1:{p}" for p in self.ports]
            subprocess.run(
                [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=START_TIMEOUT_S,
            )
            self._wait(self._ready, "cluster_state:ok on every node")
        except Exception as exc:  # said with what redis-cli and the nodes printed
            said = getattr(exc, "stdout", None) or b""
            said = said if isinstance(said, str) else said.decode(errors="replace")
            logs = [(p, self.root / str(p) / "log") for p in self.ports]
            tails = [f"node {p}: {log.read_text(errors='replace')[-600:]}" for p, log in logs if log.exists()]
            self.stop()
            raise RuntimeError("\n".join([f"the test cluster did not start: {exc}", said, *tails])) from exc
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        """Every node sees the whole cluster ok, and every replica's link to its master is up
        with nothing left to copy (its offset is its master's)."""
        for port in self.ports:
            with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as r:
                info = r.cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_known_nodes", 0)) != len(self.ports):
                    return False
                repl = r.info("replication")
                if repl["role"] == "master" and int(repl["connected_slaves"]) != self.replicas:
                    return False
                if repl["role"] == "slave" and (repl["master_link_status"] != "up" or repl["master_sync_in_progress"]):
                    return False
        return True

    def masters(self) -> list[int]:
        """The ports of the nodes that are masters now (a failover changes them)."""
        found = []
        for port, proc in zip(self.ports, self.procs, strict=True):
            if proc.poll() is None:
                with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as r:
                    if r.info("replication")["role"] == "master":
                        found.append(port)
        return found

    def replica_of(self, port: int) -> int:
        """The port of a replica of the master on ``port``."""
        with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as r:
            return int(r.info("replication")["slave0"]["port"])

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (no shutdown, no last write to its replica)."""
        proc = self.procs[self.ports.index(port)]
        proc.kill()
        proc.wait()

    def wait_failed_over(self, dead: int, replica: int) -> None:
        """Wait until ``replica`` is the master of the slots ``dead`` served and every live node
        reports cluster_state:ok."""

        def done() -> bool:
            for port, proc in zip(self.ports, self.procs, strict=True):
                if port == dead or proc.poll() is not None:
                    continue
                with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as r:
                    if r.cluster("info").get("cluster_state") != "ok":
                        return False
            with redis.Redis(port=replica, decode_responses=True, socket_timeout=2) as r:
                return bool(r.info("replication")["role"] == "master")

        self._wait(done, f"the replica on {replica} to take over from {dead}")

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test cluster did not come up: timed out waiting for {what}")
            time.sleep(0.05)

    def client(self) -> RedisCluster:
        """A blocking cluster client (decoded replies), as taskq makes it."""
        return sync_client(self.url)  # type: ignore[return-value]

    def flush(self) -> None:
        """Empty every master (their replicas follow; the script caches stay: scripts are per node)."""
        for port in self.masters():
            with redis.Redis(port=port) as r:
                r.flushall()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def distinct_free_ports(n: int) -> list[int]:
    """``n`` ports free now, no two the same (two calls of free_port may give one port twice)."""
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


SENTINEL_CONFIG = """port {port}
bind 127.0.0.1
dir {dir}
sentinel monitor {service} 127.0.0.1 {primary} 1
sentinel down-after-milliseconds {service} 1000
sentinel failover-timeout {service} 4000
"""


class LocalSentinel:
    """A primary, a replica of it and one Sentinel watching them (``service``); :attr:`url` is
    the ``redis+sentinel://`` URL. :meth:`failover` makes the replica the primary."""

    def __init__(self, service: str = "taskq-primary") -> None:
        self.binary = shutil.which("redis-server") or "redis-server"
        self.service = service
        self.primary, self.replica, self.sentinel = distinct_free_ports(3)
        self.root = Path(tempfile.mkdtemp(prefix="taskq-sentinel-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/{self.service}"

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.root / f"{name}.log").open("wb") as log:
            self.procs.append(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent_hook())
            )

    def start(self) -> LocalSentinel:
        try:
            common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.root)]
            self._spawn("primary", [self.binary, "--port", str(self.primary), *common])
            self._spawn("replica", [self.binary, "--port", str(self.replica), "--replicaof", "127.0.0.1",
                                    str(self.primary), *common])  # fmt: skip
            config = self.root / "sentinel.conf"
            config.write_text(
                SENTINEL_CONFIG.format(port=self.sentinel, dir=self.root, service=self.service, primary=self.primary)
            )
            self._spawn("sentinel", [self.binary, str(config), "--sentinel"])
            _wait(lambda: all(ping("127.0.0.1", p) for p in (self.primary, self.replica, self.sentinel)), "servers")
            _wait(self._replica_known, "the Sentinel to know the synced replica")
        except BaseException:
            self.stop()
            raise
        return self

    def _replica_known(self) -> bool:
        with redis.Redis(port=self.sentinel, decode_responses=True, socket_timeout=2) as s:
            replicas = s.execute_command("SENTINEL", "REPLICAS", self.service)
        fields = [dict(zip(r[::2], r[1::2], strict=True)) if isinstance(r, list) else r for r in replicas]
        return any(f.get("flags") == "slave" and f.get("master-link-status") == "ok" for f in fields)

    def primary_port(self) -> int:
        with redis.Redis(port=self.sentinel, decode_responses=True, socket_timeout=2) as s:
            return int(s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)[1])

    def kill_primary(self) -> int:
        """SIGKILL the primary (a crash: nothing more reaches its replica or its clients); returns
        the new primary's port once the Sentinel reports it (down after 1 s, then failed over).

        Not ``SENTINEL FAILOVER``: that promotes the replica while the old primary, alive, stays
        writable until the Sentinel turns it into a replica about 10 s later (and drops its
        clients), and whatever clients still connected to it wrote meanwhile is then gone."""
        old = self.primary_port()
        proc = self.procs[0]  # spawned first
        proc.kill()
        proc.wait()
        _wait(lambda: self.primary_port() != old, "the Sentinel to report the new primary")
        return self.primary_port()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _wait(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
