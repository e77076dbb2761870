"""The documentation site (mkdocs.yml, scripts/docs_hooks.py): built strictly, complete, and as
a reader sees it.

* The site builds with ``mkdocs build --strict`` (any warning fails), the notebooks executed on
  an embedded server. ``scripts/test.sh`` builds it before pytest and passes it on in
  ``TASKQ_DOCS_SITE`` (or, when it failed, ``TASKQ_DOCS_BUILD_FAILED``: these tests then fail at
  once); without either variable the tests build it themselves, once.
* Strict mode really is on: a page with a broken link fails the build.
* Every name in ``taskq.__all__`` has a reference entry (the site's ``objects.inv``) and a
  docstring; every command of the CLI, plug-ins (``serve``, ``bench``) included, is in the CLI
  reference; every route of the app's OpenAPI schema is in the HTTP API reference.
* The notebooks are pages with outputs made at build time (the saved notebooks have none), plots
  included; the benchmark page states its machine and command and shows its plots.
* The Python examples of the site's own pages (getting started, how-to) run, and their
  ``taskq`` commands parse, exactly as tests/project/test_docs.py checks the guides.
* Headless Chromium shows the home page (its Mermaid picture drawn by the site's own mermaid,
  with no request leaving the machine) and a notebook page; screenshots in test-artifacts/.
"""

from __future__ import annotations

import contextlib
import html
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import griffe
import pytest
import test_docs  # tests/project/test_docs.py: the guides' block runner, reused for the site's pages
from mkdocstrings import Inventory
from webhelpers import CHROMIUM, CHROMIUM_ARGS, require_chromium

import taskq
import taskq.cli
from taskq.server import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SITE_ENV = "TASKQ_DOCS_SITE"
#: The site's own pages with examples (the guides are covered by test_docs.py).
SITE_PAGES = (
    "docs/getting-started.md",
    "docs/howto/priorities.md",
    "docs/howto/retries-and-dlq.md",
    "docs/howto/scaling-out.md",
    "docs/howto/http-api.md",
    "docs/howto/dashboard.md",
    "docs/howto/deployment.md",
    "docs/howto/periodic-and-rate-limits.md",
    "docs/howto/workflows.md",
    "docs/howto/research-lab.md",
)
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: Generous: it only stops a hung build (the notebooks run inside it), never measures speed.
BUILD_TIMEOUT_S = 1800

# The first test builds the site when scripts/test.sh has not (the notebooks run inside the build):
# more than pytest's default timeout, which only stops a hang.
pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 300)

sys.path.insert(0, str(ROOT / "scripts"))
import gen_cli_ref  # noqa: E402
import gen_openapi  # noqa: E402


def _mkdocs_build(
    site_dir: Path, *, docs_dir: Path | None = None, execute: bool = True
) -> subprocess.CompletedProcess[str]:
    """``mkdocs build`` of mkdocs.yml into ``site_dir`` (optionally from another docs_dir)."""
    code = (
        "import logging, sys; from mkdocs.config import load_config; from mkdocs.commands.build import build; "
        "logging.basicConfig(level=logging.WARNING); "
        "overrides = {'site_dir': sys.argv[1]}; "
        "overrides.update({'docs_dir': sys.argv[2]} if len(sys.argv) > 2 else {}); "
        "build(load_config('mkdocs.yml', **overrides))"
    )
    argv = [sys.executable, "-c", code, str(site_dir), *([str(docs_dir)] if docs_dir else [])]
    env = {**os.environ, "TASKQ_DOCS_EXECUTE": "1" if execute else "0", "NO_MKDOCS_2_WARNING": "1"}
    env.pop("TASKQ_REDIS_URL", None)  # the notebooks get the build's own embedded server
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("TASKQ_DOCS_BUILD_FAILED"):
        pytest.fail("the strict build in scripts/test.sh failed (its output is above pytest's)", pytrace=False)
    given = os.environ.get(SITE_ENV)
    if given:
        path = (ROOT / given).resolve()
        assert (path / "index.html").is_file(), f"{SITE_ENV}={given} holds no built site"
        return path
    out = tmp_path_factory.mktemp("site")
    proc = _mkdocs_build(out)
    assert proc.returncode == 0, f"the strict build failed:\n{proc.stderr[-6000:]}"
    return out


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def _text(page_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


# ---------------------------------------------------------------------------
# The build


def test_strict_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "index.md").write_text(
        (docs / "index.md").read_text(encoding="utf-8") + "\n[gone](no-such-page.md)\n", encoding="utf-8"
    )
    proc = _mkdocs_build(tmp_path / "site", docs_dir=docs, execute=False)
    assert proc.returncode != 0, "a broken link did not fail the build: is strict mode off?"
    assert "no-such-page.md" in proc.stderr


def test_every_public_name_has_a_reference_entry_and_a_docstring(site: Path) -> None:
    with (site / "objects.inv").open("rb") as inventory_file:
        inventory = Inventory.parse_sphinx(inventory_file)
    package = griffe.load("taskq", search_paths=[str(ROOT)])
    reference = _page(site, "reference/taskq")
    missing_entry, missing_doc = [], []
    for name in taskq.__all__:
        entry = package[name]
        if entry.is_module and not inspect.ismodule(getattr(taskq, name)):
            entry = entry[name]  # a function re-exported under its module's name (taskq.signature)
        if not ({f"taskq.{name}", entry.path} & set(inventory)) and f'id="taskq.{name}"' not in reference:
            missing_entry.append(name)
        if not (entry.docstring and entry.docstring.value.strip()):
            missing_doc.append(name)
    assert not missing_entry, f"no entry in the API reference (docs/reference/taskq.md) for {missing_entry}"
    assert not missing_doc, f"no docstring for {missing_doc}: the reference would show them bare"


def test_the_widgets_and_the_api_package_are_in_the_reference(site: Path) -> None:
    import taskq_api
    import taskq_widgets

    with (site / "objects.inv").open("rb") as inventory_file:
        inventory = Inventory.parse_sphinx(inventory_file)
    for module in (taskq_widgets, taskq_api):
        missing = [name for name in module.__all__ if f"{module.__name__}.{name}" not in inventory]
        assert not missing, f"{module.__name__}: no reference entry for {missing}"


def test_every_cli_command_is_in_the_cli_reference(site: Path) -> None:
    text = _text(_page(site, "reference/cli"))
    paths = list(gen_cli_ref.command_paths(taskq.cli.command()))
    top = {path[0] for path in paths}
    assert {"serve", "bench", "worker", "dlq"} <= top, f"commands (plug-ins included) not found: {sorted(top)}"
    missing = [" ".join(path) for path in paths if f"taskq {' '.join(path)}" not in text]
    assert not missing, f"commands missing from the CLI reference: {missing}"


def test_every_route_is_in_the_http_api_reference(site: Path) -> None:
    schema = gen_openapi.openapi_schema()
    served = (site / "reference" / "openapi.json").read_text(encoding="utf-8")
    text = _text(_page(site, "reference/http-api"))
    for path in schema["paths"]:
        assert f'"{path}"' in served and path in text, f"{path} is not in the HTTP API reference"


# ---------------------------------------------------------------------------
# Generated pages


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_pages_show_outputs_made_at_build_time(site: Path, notebook: str) -> None:
    page = _page(site, f"notebooks/{notebook}")
    # The saved notebooks have no outputs (checked here too): every output is from the build.
    saved = (ROOT / "notebooks" / f"{notebook}.ipynb").read_text(encoding="utf-8")
    assert '"output_type"' not in saved, f"{notebook}.ipynb is saved with outputs"
    outputs = re.findall(r'class="[^"]*jp-OutputArea-output', page)
    assert outputs, f"{notebook}: no cell output on its page: were the notebooks executed?"
    assert "Traceback" not in _text(page), f"{notebook}: a traceback on its page"


def test_notebook_plots_are_rendered(site: Path) -> None:
    with_plots = [nb for nb in NOTEBOOKS if "data:image/png;base64," in _page(site, f"notebooks/{nb}")]
    assert len(with_plots) >= len(NOTEBOOKS) // 2, f"plots only in {with_plots}"


def test_benchmark_page_states_machine_and_command(site: Path) -> None:
    page = _page(site, "benchmarks")
    text = _text(page)
    results = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
    assert results
    for path in results:
        assert path.name in text
        for kind in ("throughput", "latency"):
            image = site / "bench" / f"{path.stem}-{kind}.png"
            assert image.is_file() and image.read_bytes()[:4] == b"\x89PNG", image
    commands = text.count("Command: taskq bench") + text.count("Command: python -m taskq_bench.run")  # the CLI or not
    assert text.count("Machine: ") == len(results) and commands == len(results)
    assert "drain tasks/s" in text and "enqueue tasks/s" in text


def test_the_site_loads_no_script_from_elsewhere(site: Path) -> None:
    offenders = []
    for page in site.rglob("*.html"):
        text = page.read_text("utf-8")
        loaded = re.findall(r'<script[^>]+src="((?:https?:)?//[^"]+)"', text)
        loaded += re.findall(r'<link[^>]+rel="stylesheet"[^>]+href="((?:https?:)?//[^"]+)"', text)
        offenders += [f"{page.relative_to(site)}: {url}" for url in loaded]
    assert not offenders, offenders[:10]


def test_every_image_of_every_page_exists(site: Path) -> None:
    broken = []
    for page in site.rglob("*.html"):
        for src in re.findall(r'<img[^>]+src="([^"]+)"', page.read_text("utf-8")):
            if src.startswith(("data:", "http:", "https:", "//")):
                continue
            if not (page.parent / src.split("#")[0].split("?")[0]).resolve().is_file():
                broken.append(f"{page.relative_to(site)}: {src}")
    assert not broken, broken[:10]


# ---------------------------------------------------------------------------
# The site's own examples


@pytest.mark.parametrize("doc", SITE_PAGES)
def test_site_page_python_examples_run(
    doc: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [b for b in test_docs.read_blocks(doc) if b.lang == "python" and b.marker is None], f"{doc}: no example"
    test_docs.test_python_examples_run(doc, redis_url, tmp_path, monkeypatch)


def test_site_page_taskq_commands_parse() -> None:
    shown = [argv for doc in SITE_PAGES for line in test_docs.shell_lines(doc) for argv in test_docs.commands(line)]
    taskq_lines = [argv[1:] for argv in shown if argv[0] == "taskq"]
    assert len(taskq_lines) >= 5
    for argv in taskq_lines:
        test_docs._parse_taskq(argv)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for argv in shown:
        if argv[0] == "make":
            assert re.search(rf"^{re.escape(argv[1])}:", makefile, re.MULTILINE), f"make {argv[1]} is not a target"


# ---------------------------------------------------------------------------
# In a browser


@contextlib.contextmanager
def _serve(site: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the static server did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_home_and_notebook_pages_in_chromium(site: Path) -> None:
    require_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    elsewhere: list[str] = []
    with _serve(site) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on(
                "request",
                lambda request: (
                    elsewhere.append(request.url)
                    if urlparse(request.url).hostname not in ("127.0.0.1", None) and request.url.startswith("http")
                    else None
                ),
            )
            page.goto(url, wait_until="load")
            # The diagram is drawn in the browser by the site's own mermaid.min.js, into a closed
            # shadow root (mkdocs-material's way): its host grows from nothing to the picture (an
            # empty host is 0 px; the picture, scaled to the column, 142 px in Chromium 156 here).
            page.wait_for_function(
                "() => [...document.querySelectorAll('div.mermaid')].some(d => d.getBoundingClientRect().height > 100)",
                timeout=60_000,
            )
            page.screenshot(path=str(ARTIFACTS / "docs-home.png"), full_page=False)
            notebook = next(nb for nb in NOTEBOOKS if "priorities" in nb)
            page.goto(f"{url}notebooks/{notebook}/", wait_until="load")
            page.wait_for_selector(".jp-OutputArea-output img", timeout=60_000)
            page.locator(".jp-OutputArea-output img").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "docs-notebook.png"), full_page=False)
            # Swagger UI (served by the site) draws one block per operation of the schema.
            schema = json.loads((site / "reference" / "openapi.json").read_text(encoding="utf-8"))
            operations = sum(len(set(item) & set(gen_openapi.METHODS)) for item in schema["paths"].values())
            page.goto(f"{url}reference/http-api/", wait_until="load")
            page.wait_for_function(
                f"() => document.querySelectorAll('.swagger-ui .opblock').length === {operations}", timeout=60_000
            )
        finally:
            browser.close()
    assert not elsewhere, f"the site asked for something off this machine: {elsewhere[:5]}"
    diagram = re.search(r'<pre class="mermaid"><code>(.*?)</code>', _page(site, "").replace("\n", " "))
    assert diagram, "the home page has no Mermaid diagram"
    for part in ("Client", "HTTP API", "Redis", "Workers", "Results", "Dashboard", "Notebooks"):
        assert part in diagram.group(1), f"the home page's picture lacks {part}"
