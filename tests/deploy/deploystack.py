"""Run docker-compose.yml's services as local processes, the way the containers would run them.

There is no Docker engine here, so :class:`LocalStack` reads the compose file and starts each
service's own command with its own environment, translated to this machine: the service
hostnames (``redis``, ``api``) become 127.0.0.1, each container port a free local port, the
image's ``/app`` (where the Dockerfile copies ``deploy/example_tasks.py`` and
``deploy/healthcheck.py``) this checkout's ``deploy/`` folder, a named volume a temporary
folder, a bind mount on the image's PYTHONPATH its source folder, and ``python`` / ``taskq``
the test environment's. Override files merge in as with ``docker compose -f ... -f ...``.
Services start in ``depends_on`` order, and a ``service_healthy`` condition waits for the
dependency's own healthcheck command to pass. Nginx runs ``deploy/nginx.conf`` with the same translations.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taskq.server import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
DASHBOARD_DIST = ROOT / "api" / "taskq_api" / "dashboard_dist"
#: The Dockerfile's WORKDIR, where it copies the deploy/ files the stack runs.
IMAGE_APP_DIR = "/app"
#: Generous bounds that only stop a hang.
HEALTHY_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 15.0

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def load_compose(*overrides: Path) -> dict[str, Any]:
    """docker-compose.yml, with override files merged in as ``docker compose -f ... -f ...``
    does for what this stack uses (mappings merge, lists of mounts add up)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    for path in overrides:
        data = _merge(data, yaml.safe_load(path.read_text(encoding="utf-8")))
    return data


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merge(base[k], v) if k in base else v for k, v in over.items()}}
    if isinstance(base, list) and isinstance(over, list):
        return [*base, *(v for v in over if v not in base)]
    return over


def image_pythonpath() -> list[str]:
    """The runtime image's ``ENV PYTHONPATH`` (the Dockerfile's), as a list."""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("ENV PYTHONPATH="):
            return line.partition("=")[2].split(":")
    raise AssertionError("the Dockerfile sets no PYTHONPATH")


def compose_variables() -> set[str]:
    """Every variable the compose file interpolates."""
    return {m["name"] for m in _VARIABLE.finditer(COMPOSE_FILE.read_text(encoding="utf-8"))}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        given = env.get(name)
        unset = given is None or (op is not None and op.startswith(":") and given == "")
        if unset and op is not None and op.endswith("?"):
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        if unset:
            return arg if op is not None and op.endswith("-") else ""
        return given or ""

    return _VARIABLE.sub(one, value)


def seconds(duration: str) -> float:
    """A compose duration such as '30s', '1m30s' or '500ms', in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(a + u for a, u in parts) == duration, duration
    return sum(float(amount) * units[unit] for amount, unit in parts)


def container_port(service: dict[str, Any]) -> int | None:
    """The port a service listens on inside its container: ``expose``, the container side of
    ``ports``, or its command's ``--port``."""
    if service.get("expose"):
        return int(service["expose"][0])
    if service.get("ports"):
        return int(str(service["ports"][0]).rsplit(":", 1)[1])
    command = [str(a) for a in service.get("command", [])]
    if "--port" in command:
        return int(command[command.index("--port") + 1])
    return None


@dataclass
class Translation:
    """Container names, ports and paths → this machine's."""

    ports: dict[str, tuple[int, int]]  # service → (container port, local port)
    volumes: dict[str, Path]  # named volume → local folder
    app_dir: Path = ROOT / "deploy"

    def text(self, value: str) -> str:
        for name, (inner, local) in self.ports.items():
            value = value.replace(f"{name}:{inner}", f"127.0.0.1:{local}")
            value = value.replace(f"127.0.0.1:{inner}/", f"127.0.0.1:{local}/")
        value = value.replace("0.0.0.0", "127.0.0.1")
        return value.replace(f"{IMAGE_APP_DIR}/", f"{self.app_dir}/")

    def argv(self, service: str, argv: list[Any]) -> list[str]:
        """A command of ``service`` (its own or its healthcheck's), translated."""
        inner, local = self.ports.get(service, (None, None))
        out: list[str] = []
        for i, arg in enumerate(str(a) for a in argv):
            after_port_flag = i > 0 and str(argv[i - 1]) in ("--port", "-p")
            out.append(str(local) if after_port_flag and inner is not None and arg == str(inner) else self.text(arg))
        program = {"python": sys.executable, "taskq": str(Path(sys.executable).with_name("taskq"))}
        out[0] = program.get(out[0], shutil.which(out[0]) or out[0])
        return out


@dataclass
class Process:
    service: str
    replica: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class LocalStack:
    """The compose file's services as local processes (``start``, then ``stop``)."""

    workdir: Path
    env: dict[str, str]  # what `docker compose` would interpolate from (.env and the shell)
    overrides: tuple[Path, ...] = ()  # more compose files, as `-f`
    compose: dict[str, Any] = field(default_factory=dict)
    tr: Translation = field(init=False)
    processes: list[Process] = field(default_factory=list)
    nginx_root: Path | None = None

    def __post_init__(self) -> None:
        self.compose = interpolate(load_compose(*self.overrides), self.env)
        ports: dict[str, tuple[int, int]] = {}
        for name, service in self.compose["services"].items():
            inner = container_port(service)
            if inner is not None:
                local = free_port()
                assert local not in (80, 6379), "never the well-known ports"
                ports[name] = (inner, local)
        volumes = {}
        for name in self.compose.get("volumes", {}):
            volumes[name] = self.workdir / f"volume-{name}"
            volumes[name].mkdir(mode=0o755)
        self.tr = Translation(ports=ports, volumes=volumes)

    def port(self, service: str) -> int:
        return self.tr.ports[service][1]

    @property
    def services(self) -> dict[str, Any]:
        services: dict[str, Any] = self.compose["services"]
        return services

    def order(self) -> list[str]:
        """Services in ``depends_on`` order."""
        done: list[str] = []

        def visit(name: str) -> None:
            if name not in done:
                for dep in self.services[name].get("depends_on", {}):
                    visit(dep)
                done.append(name)

        for name in self.services:
            visit(name)
        return done

    def start(self, only: tuple[str, ...] = ()) -> None:
        """Start every service (or ``only`` these and what they depend on) and wait until healthy."""
        wanted = self.order()
        if only:
            needed = set(only)
            for name in reversed(wanted):
                if name in needed:
                    needed |= set(self.services[name].get("depends_on", {}))
            wanted = [name for name in wanted if name in needed]
        for name in wanted:
            for dep, condition in self.services[name].get("depends_on", {}).items():
                if condition.get("condition") == "service_healthy":
                    self.wait_healthy(dep)
            replicas = int(self.services[name].get("deploy", {}).get("replicas", 1))
            for replica in range(1, replicas + 1):
                self._start(name, replica)
        for name in wanted:
            self.wait_healthy(name)

    def environment(self, name: str) -> dict[str, str]:
        """A service's environment: this one's (less any Redis URL of its own), the service's
        ``environment`` translated, and the image's PYTHONPATH with /app and mounts translated."""
        env = {k: v for k, v in os.environ.items() if k not in ("TASKQ_REDIS_URL", "REDIS_URL")}
        env.update({k: self.tr.text(str(v)) for k, v in self.services[name].get("environment", {}).items()})
        mounts = {}
        for mount in self.services[name].get("volumes", []):
            source, _, rest = str(mount).partition(":")
            if source.startswith((".", "/")):  # a bind mount, relative to the project directory
                mounts[rest.partition(":")[0]] = str((ROOT / source).resolve())
        env["PYTHONPATH"] = ":".join(
            mounts.get(entry) or self.tr.text(entry + "/").rstrip("/") for entry in image_pythonpath()
        )
        return env

    def _start(self, name: str, replica: int) -> None:
        service = self.services[name]
        env = self.environment(name)
        cwd = self.tr.app_dir
        argv = self._nginx_argv() if name == "nginx" else self.tr.argv(name, service["command"])
        if name == "redis":
            argv += ["--bind", "127.0.0.1"]  # the container's network is private; this host's is not
            for mount in service.get("volumes", []):
                volume, _, target = str(mount).partition(":")
                if target == "/data":  # the redis image's WORKDIR: where the AOF goes
                    cwd = self.tr.volumes[volume]
        log = self.workdir / f"{name}-{replica}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(Process(name, replica, popen, log))

    def _nginx_argv(self) -> list[str]:
        """nginx with deploy/nginx.conf translated, in the foreground as the image's CMD runs it."""
        inner, local = self.tr.ports["nginx"]
        conf = self.tr.text(NGINX_CONF.read_text(encoding="utf-8"))
        conf = conf.replace(f"listen {inner};", f"listen 127.0.0.1:{local};")
        if DASHBOARD_DIST.is_dir():
            self.nginx_root = DASHBOARD_DIST
        else:
            self.nginx_root = self.workdir / "empty-root"
            self.nginx_root.mkdir(mode=0o755, exist_ok=True)
        conf = conf.replace("root /usr/share/nginx/html;", f"root {self.nginx_root};")
        prefix = self.workdir / "nginx"
        prefix.mkdir(mode=0o755)
        temp_paths = "".join(
            f"\n    {kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = conf.replace("http {", "http {" + temp_paths, 1)
        path = self.workdir / "nginx.conf"
        path.write_text(conf, encoding="utf-8")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-c", str(path), "-p", f"{prefix}/", "-g", f"daemon off; pid {prefix}/nginx.pid;"]

    def healthy(self, name: str) -> bool:
        """Runs the service's own healthcheck command (translated) once."""
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = self.tr.argv(name, test[1:])
        done = subprocess.run(argv, env=self.environment(name), capture_output=True, timeout=30, check=False)
        return done.returncode == 0

    def wait_healthy(self, name: str) -> None:
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while not self.healthy(name):
            dead = [p for p in self.processes if p.service == name and p.popen.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"--- {p.service}-{p.replica}:\n{p.output()[-2000:]}" for p in self.processes)
                raise AssertionError(f"{name} did not become healthy (exited: {bool(dead)})\n{logs}")
            time.sleep(0.2)

    def of(self, name: str) -> list[Process]:
        return [p for p in self.processes if p.service == name]

    def restart(self, name: str) -> None:
        """``docker compose restart NAME``: SIGTERM, wait, the same command again (same volumes)."""
        for process in self.of(name):
            process.popen.send_signal(signal.SIGTERM)
            assert process.popen.wait(timeout=STOP_TIMEOUT_S) == 0, process.output()[-2000:]
            self.processes.remove(process)
            self._start(name, process.replica)
        self.wait_healthy(name)

    def stop(self) -> None:
        """SIGTERM (every service's stop_signal), the dependents first; SIGKILL what outlives the bound."""
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                process.popen.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=STOP_TIMEOUT_S)
