"""The standard deployment's wiring, read from docker-compose.yml, the Dockerfile and the env
files (the linters, deploy/lint.sh, check their syntax against the Compose Specification,
hadolint's rules and `nginx -t`; tests/deploy/test_deploy_stack.py runs the stack)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from typing import Any

import pytest
import yaml
from deploystack import ROOT, compose_variables, interpolate, load_compose, seconds

TOKEN_ENV = {"TASKQ_API_TOKEN": "t0ken"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = interpolate(load_compose(), TOKEN_ENV)
    return data


def option(command: list[Any], flag: str) -> str:
    args = [str(a) for a in command]
    return args[args.index(flag) + 1]


def test_six_containers_in_four_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker", "nginx"}
    replicas = {name: int(s.get("deploy", {}).get("replicas", 1)) for name, s in services.items()}
    assert replicas == {"redis": 1, "api": 1, "worker": 3, "nginx": 1}
    assert sum(replicas.values()) == 6
    assert "container_name" not in services["worker"], "a fixed name would stop `--scale worker=N`"


def test_each_service_has_a_healthcheck_and_restarts(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service["healthcheck"]
        assert check["test"][0] == "CMD", name
        assert seconds(check["interval"]) > 0 and check["retries"] >= 1, name
        assert service["restart"] == "unless-stopped", name
    services = compose["services"]
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "-e", "-p", "6379", "ping"]
    assert services["api"]["healthcheck"]["test"][-1].endswith(":8000/readyz")
    assert services["worker"]["healthcheck"]["test"][-1] == "worker"
    assert services["nginx"]["healthcheck"]["test"][-1].endswith("/healthz")


def test_start_order_waits_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    healthy = {"condition": "service_healthy"}
    assert services["api"]["depends_on"] == {"redis": healthy}
    assert services["worker"]["depends_on"] == {"redis": healthy}
    assert services["nginx"]["depends_on"] == {"api": healthy}
    assert "depends_on" not in services["redis"]


def test_redis_keeps_an_append_only_file_on_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert option(redis["command"], "--appendonly") == "yes"
    assert option(redis["command"], "--appendfsync") == "everysec"
    assert option(redis["command"], "--maxmemory-policy") == "noeviction"
    assert redis["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]
    assert all("volumes" not in s for name, s in compose["services"].items() if name != "redis")


def test_only_nginx_publishes_a_port_on_loopback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["nginx"]["ports"] == ["127.0.0.1:8080:80"]
    assert [name for name, s in services.items() if "ports" in s] == ["nginx"]
    assert services["api"]["expose"] == ["8000"]
    assert option(services["api"]["command"], "--port") == "8000"
    assert services["api"]["environment"]["TASKQ_REDIS_URL"] == "redis://redis:6379/0"
    assert services["worker"]["environment"]["TASKQ_REDIS_URL"] == "redis://redis:6379/0"


def test_workers_stop_gracefully_within_the_stop_grace_period(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["command"][:2] == ["taskq", "worker"]
    assert worker["stop_signal"] == "SIGTERM"
    grace_s = float(option(worker["command"], "--grace-s"))
    # Time to hand the rest back after the grace period, before Docker's SIGKILL.
    assert seconds(worker["stop_grace_period"]) >= grace_s + 5
    assert compose["services"]["api"]["stop_signal"] == "SIGTERM"
    assert all(s.get("init") for name, s in compose["services"].items() if name in ("api", "worker"))


def test_the_token_comes_from_the_env_file(compose: dict[str, Any]) -> None:
    assert compose["services"]["api"]["environment"]["TASKQ_API_TOKEN"] == "t0ken"
    with pytest.raises(ValueError, match="TASKQ_API_TOKEN"):
        interpolate(load_compose(), {})
    with pytest.raises(ValueError, match="TASKQ_API_TOKEN"):
        interpolate(load_compose(), {"TASKQ_API_TOKEN": ""})
    assert "TASKQ_API_TOKEN" not in compose["services"]["worker"]["environment"]
    done = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert done.returncode == 0, ".env must be ignored by git"
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


def test_env_example_documents_every_variable() -> None:
    example = dict(
        line.lstrip("# ").split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^#? ?[A-Z_]+=", line)
    )
    override = (ROOT / "deploy" / "compose.tasks.yml").read_text()
    used = compose_variables() | set(re.findall(r"\$\{(\w+)", override))
    assert used == set(example), f"documented: {sorted(example)}, used: {sorted(used)}"
    assert example["TASKQ_API_TOKEN"] == "", "the example must not ship a usable token"
    defaults = interpolate(load_compose(), {**example, "TASKQ_API_TOKEN": "x"})
    assert defaults == interpolate(load_compose(), {"TASKQ_API_TOKEN": "x"}), "the example repeats the defaults"


def test_the_override_mounts_your_tasks_first_on_the_path() -> None:
    override = yaml.safe_load((ROOT / "deploy" / "compose.tasks.yml").read_text())
    mounted = interpolate(override, {"TASKQ_TASKS_DIR": "./mytasks"})
    for name in ("api", "worker"):
        assert mounted["services"][name]["volumes"] == ["./mytasks:/app/tasks:ro"]
    with pytest.raises(ValueError, match="TASKQ_TASKS_DIR"):
        interpolate(override, {})
    assert "ENV PYTHONPATH=/app/tasks:/app" in dockerfile_lines()


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def stages() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in dockerfile_lines():
        if line.startswith("FROM "):
            current = line.split()[-1]
            out[current] = []
        if current:
            out[current].append(line)
    return out


def test_dockerfile_builds_the_dashboard_then_a_slim_non_root_runtime() -> None:
    built = stages()
    assert list(built) == ["dashboard", "web", "runtime"], "runtime is the last stage: the default target"
    assert built["dashboard"][0].startswith("FROM node:")
    assert "RUN npm ci --no-audit --no-fund" in built["dashboard"]
    assert "RUN npm run build" in built["dashboard"]
    assert built["web"][0].startswith("FROM nginx:")
    assert "COPY deploy/nginx.conf /etc/nginx/nginx.conf" in built["web"]
    assert any(line.endswith("dashboard_dist/assets/ /usr/share/nginx/html/assets/") for line in built["web"])
    assert "root /usr/share/nginx/html;" in (ROOT / "deploy" / "nginx.conf").read_text()
    runtime = built["runtime"]
    assert runtime[0].startswith("FROM python:") and runtime[0].split()[1].endswith("-slim")
    copy_dist = next(i for i, line in enumerate(runtime) if "--from=dashboard" in line)
    install = next(i for i, line in enumerate(runtime) if "pip install" in line)
    assert copy_dist < install, "the dashboard is copied in before taskq is installed"
    user = next(line for line in runtime if line.startswith("USER "))
    assert user.split()[1].split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK ") and "/readyz" in line for line in runtime)
    assert any(line.startswith("HEALTHCHECK ") and "/healthz" in line for line in built["web"])


def test_compose_runs_what_the_image_ships(compose: dict[str, Any]) -> None:
    """The compose commands name files the Dockerfile copies into /app, from deploy/."""
    copied = " ".join(line for line in dockerfile_lines() if line.startswith("COPY"))
    for name in ("example_tasks.py", "healthcheck.py"):
        assert f"deploy/{name}" in copied and (ROOT / "deploy" / name).is_file()
    assert compose["services"]["api"]["command"][2] == "example_tasks:tq"
    assert compose["services"]["worker"]["command"][2] == "example_tasks:tq"
    for name in ("api", "worker", "nginx"):
        assert compose["services"][name]["build"]["context"] == "."
    assert compose["services"]["nginx"]["build"]["target"] == "web"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") + 1 :], "an allow-list after '*'"
    for path in ("!deploy/example_tasks.py", "!deploy/healthcheck.py", "!deploy/nginx.conf", "!taskq/"):
        assert path in ignored


def test_ci_runs_the_linters_and_installs_nginx() -> None:
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert "deploy/lint.sh" in test_sh
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"command -v nginx .*missing\+=\(nginx\)", ci_run)
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    steps = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert "bash .ci/run" in steps


def test_docs_name_the_way_to_deploy() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    for needle in ("docker compose up", "--scale worker=", ".env.example", "not run"):
        assert needle in section, needle


def docker_ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: .dockerignore's rules in order, the last
    matching one wins, a pattern that matches a folder matches what is inside it."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.lstrip("!").rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            depth = pattern.count("/")
            hit = any(fnmatch.fnmatch(prefix, pattern) and prefix.count("/") == depth for prefix in prefixes)
        if hit:
            ignored = not negated
    return ignored


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_more() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    sources = [
        word
        for line in dockerfile_lines()
        if line.startswith("COPY ") and "--from=" not in line
        for word in line.split()[1:-1]
        if not word.startswith("--")
    ]
    assert "pyproject.toml" in sources and "taskq/" in sources
    skip = {"node_modules", "__pycache__", "dashboard_dist"}
    for source in sources:
        path = ROOT / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and not skip & set(p.parts)]
        assert files, f"COPY {source}: nothing there"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            assert not docker_ignored(relative, patterns), f"COPY {source} needs {relative}, which .dockerignore drops"
    for private in (".env", ".venv/bin/python", "api/dashboard/node_modules/x/index.js", "tests/conftest.py"):
        assert docker_ignored(private, patterns), private


def test_nginx_keeps_websockets_open_and_forwards_the_request_id() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    ws_block = conf.split("location = /api/v1/ws {", 1)[1].split("}", 1)[0]
    assert "proxy_read_timeout 1h;" in ws_block and "proxy_buffering off;" in ws_block
    assert "proxy_set_header" not in ws_block, "a location that sets a header inherits none of the server's"
    server = conf.split("server {", 1)[1]
    for header in ("Upgrade $http_upgrade", "Connection $connection_upgrade", "X-Request-ID $taskq_request_id"):
        assert f"proxy_set_header {header};" in server
    assert "set $taskq_api http://api:8000;" in conf  # the API's service name and port in the compose file
