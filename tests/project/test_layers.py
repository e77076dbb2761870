"""The import contracts of docs/ARCHITECTURE.md ("Layers"), checked on the import graph
(grimp) so that a new import that breaks them fails here:

* no import cycle inside ``taskq``;
* the core (``taskq``, the CLI included) imports no outer package: widgets, the HTTP API,
  the benchmark harness, FastAPI, ipywidgets, anywidget;
* the widgets and the API import the core's public API only: ``taskq`` itself, and only
  names in ``taskq.__all__``; never a module like ``taskq.ops``. The one exception is
  ``taskq.cli``, the host of the ``taskq`` command's entry-point plug-ins (STYLE.md rule 14):
  a plug-in such as ``taskq serve`` uses the names that package exports.
* the lab (``taskq.lab``, the ``taskq[lab]`` extra) alone imports its extra's packages
  (SimPy, numpy, pandas, ...); no other core module imports it or them, and it uses the
  core's public API only.

And one size rule: a core module over 500 lines says why in its docstring.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import grimp
import pytest

import taskq

ROOT = Path(__file__).resolve().parents[2]
#: The outer packages (widgets, API) and where their source lives; absent ones are skipped.
OUTER = {"taskq_widgets": ROOT / "widgets" / "taskq_widgets", "taskq_api": ROOT / "api" / "taskq_api"}
FORBIDDEN_IN_CORE = ("taskq_widgets", "taskq_api", "taskq_bench", "benchmarks", "fastapi", "ipywidgets", "anywidget")
PLUGIN_HOST = "taskq.cli"
#: The lab and the packages of its extra, which only it may import.
LAB = "taskq.lab"
LAB_EXTRA = ("simpy", "numpy", "pandas", "pyarrow", "matplotlib", "scipy")


def _present(package: str) -> bool:
    return OUTER[package].is_dir() and importlib.util.find_spec(package) is not None


@cache
def _graph() -> grimp.ImportGraph:
    packages = ["taskq", *OUTER]
    return grimp.build_graph(*packages, include_external_packages=True)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected components of more than one module inside ``package``
    (Tarjan's algorithm, iterative)."""
    nodes = sorted(m for m in graph.modules if _in(m, package))
    edges = {m: sorted(w for w in graph.find_modules_directly_imported_by(m) if _in(w, package)) for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph, "p") == [["p.a", "p.b", "p.c"]]


def test_no_import_cycle_in_the_core() -> None:
    assert _cycles(_graph(), "taskq") == []


@pytest.mark.parametrize("outer", FORBIDDEN_IN_CORE)
def test_the_core_imports_no_outer_package(outer: str) -> None:
    graph = _graph()
    if outer not in graph.modules:
        return  # nothing imports it at all (grimp lists external packages only when imported)
    chains = graph.find_shortest_chains(importer="taskq", imported=outer, as_packages=True)
    assert not chains, f"the core imports {outer}: {sorted(chains)}"


@pytest.mark.parametrize("outer", sorted(OUTER))
def test_outer_packages_import_only_the_public_api(outer: str) -> None:
    assert _present(outer), f"{outer} ships in this repo and `make test` installs it: the set-up is broken"
    graph = _graph()
    bad = sorted(
        (importer, imported)
        for importer in graph.modules
        if _in(importer, outer)
        for imported in graph.find_modules_directly_imported_by(importer)
        if _in(imported, "taskq") and imported not in ("taskq", PLUGIN_HOST)
    )
    assert bad == [], f"{outer} imports private taskq modules (use names from taskq.__all__): {bad}"


@pytest.mark.parametrize("extra", LAB_EXTRA)
def test_only_the_lab_imports_its_extra(extra: str) -> None:
    graph = _graph()
    if extra not in graph.modules:
        return  # nothing imports it at all
    importers = {
        importer
        for module in graph.modules
        if _in(module, extra)
        for importer in graph.find_modules_that_directly_import(module)
    }
    bad = sorted(m for m in importers if _in(m, "taskq") and not _in(m, LAB))
    assert bad == [], f"core modules outside {LAB} import {extra} (an extra of taskq[lab]): {bad}"


def test_no_core_module_imports_the_lab() -> None:
    graph = _graph()
    bad = sorted(
        (importer, module)
        for module in graph.modules
        if _in(module, LAB)
        for importer in graph.find_modules_that_directly_import(module)
        if not _in(importer, LAB)
    )
    assert bad == [], f"the core imports the lab (an optional extra): {bad}"


def test_the_lab_uses_only_the_public_api() -> None:
    graph = _graph()
    bad = sorted(
        (importer, imported)
        for importer in graph.modules
        if _in(importer, LAB)
        for imported in graph.find_modules_directly_imported_by(importer)
        if _in(imported, "taskq") and imported != "taskq" and not _in(imported, LAB)
    )
    assert bad == [], f"{LAB} imports private taskq modules (use names from taskq.__all__): {bad}"
    public = set(taskq.__all__)
    names = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted((ROOT / "taskq" / "lab").rglob("*.py"))
        for line, name in _names_from_taskq(path)
        if name not in public
    ]
    assert names == [], f"not in taskq.__all__: {names}"


def _names_from_taskq(source: Path) -> Iterator[tuple[int, str]]:
    """(line, name) of every ``from taskq import name`` in ``source``."""
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.ImportFrom) and node.module == "taskq" and node.level == 0:
            for alias in node.names:
                yield node.lineno, alias.name


@pytest.mark.parametrize("outer", sorted(OUTER))
def test_outer_packages_use_names_taskq_exports(outer: str) -> None:
    assert _present(outer), f"{outer} ships in this repo and `make test` installs it: the set-up is broken"
    public = set(taskq.__all__)
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in sorted(OUTER[outer].rglob("*.py"))
        for line, name in _names_from_taskq(path)
        if name not in public
    ]
    assert bad == [], f"not in taskq.__all__: {bad}"


#: A core module longer than this says why in its docstring (a sentence naming the limit).
MAX_MODULE_LINES = 500


def test_no_core_module_is_long_without_a_reason() -> None:
    too_long = []
    for path in sorted((ROOT / "taskq").rglob("*.py")):
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            docstring = ast.get_docstring(ast.parse(source)) or ""
            if f"{MAX_MODULE_LINES} lines" not in docstring:
                too_long.append(f"{path.relative_to(ROOT)}: {source.count(chr(10))} lines")
    assert too_long == [], f"split these, or say in the docstring why over {MAX_MODULE_LINES} lines: {too_long}"
