"""mkdocs hooks (mkdocs.yml ``hooks:``): the pages and files generated when the site is built.

* ``reference/cli.md``: the CLI reference, from the ``taskq`` command itself (gen_cli_ref.py);
* ``reference/http-api.md`` and ``reference/openapi.json``: the HTTP API reference, from the app's
  OpenAPI schema (gen_openapi.py), rendered by Swagger UI;
* ``benchmarks.md`` and ``bench/*.png``: the benchmark results page, from the saved results
  files by the harness's own report and plot code (gen_bench_page.py);
* ``notebooks/*.ipynb``: the teaching notebooks, read where they live; mkdocs-jupyter executes
  them while the site builds, on a private embedded server this hook starts (``TASKQ_REDIS_URL``
  and ``PYTHONPATH`` set for the kernels and the worker processes they start, as
  notebooks/conftest.py does for the tests) and stops when the build ends;
* ``assets/js/``: mermaid and Swagger UI from npm (scripts/docs_js, ``npm ci`` when its
  node_modules is missing), so no page loads a script from a CDN;
* the nav: a page of docs/ that mkdocs.yml does not list yet is listed under "More guides"
  rather than left out (which the strict build refuses): a new guide shows up at once.

Nothing is written into docs/: every generated page is an in-memory file of the build.
``TASKQ_DOCS_EXECUTE=0`` renders the notebooks with their saved outputs instead of running them
(a quick preview; the strict build of ``make docs`` always runs them).

``TASKQ_DOCS_NOTEBOOKS=DIR`` renders the notebooks as executed elsewhere instead of running them
again: scripts/test.sh runs each notebook once, as a test (``pytest --nbmake --overwrite`` on a copy
in ``build/executed/notebooks/``), and the site shows those outputs. The build then fails, as it
would have when executing, if a notebook is missing from DIR, differs from notebooks/ in any cell's
source, or has a code cell that did not run or ended in an error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # the generators beside this file

import gen_bench_page  # noqa: E402
import gen_cli_ref  # noqa: E402
import gen_openapi  # noqa: E402

from taskq import EmbeddedServer  # noqa: E402

log = logging.getLogger("mkdocs.hooks.taskq")

NOTEBOOKS = ROOT / "notebooks"
JS_DIR = ROOT / "scripts" / "docs_js"
#: Browser assets served by the site: its path -> the file in scripts/docs_js/node_modules.
ASSETS = {
    "assets/js/mermaid.min.js": "mermaid/dist/mermaid.min.js",
    "assets/js/swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "assets/js/swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}
ENV_KEYS = ("TASKQ_REDIS_URL", "PYTHONPATH")
#: Where the notebooks already executed by the tests are (scripts/test.sh), if set.
EXECUTED_ENV = "TASKQ_DOCS_NOTEBOOKS"

_server: EmbeddedServer | None = None
_saved_env: dict[str, str | None] = {}


def _npm_assets() -> None:
    """``npm ci`` in scripts/docs_js when an asset is missing or the lock file is newer."""
    lock = JS_DIR / "package-lock.json"
    stamp = JS_DIR / "node_modules" / ".package-lock.json"
    missing = [path for path in ASSETS.values() if not (JS_DIR / "node_modules" / path).is_file()]
    if missing or not stamp.is_file() or stamp.stat().st_mtime < lock.stat().st_mtime:
        log.info("npm ci in %s (the site's mermaid and Swagger UI)", JS_DIR)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS_DIR, check=True, timeout=600
        )


def _jupyter_config(config: MkDocsConfig) -> Any:
    return config.plugins["mkdocs-jupyter"].config


def _nav_paths(nav: Any) -> Iterator[str]:
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_paths(value)
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_paths(item)


def _add_new_guides(config: MkDocsConfig) -> None:
    """A Markdown page in docs/ that the nav does not list yet (a guide another change just
    added) goes under "More guides" instead of failing the strict build as an omitted page;
    move it to its place in mkdocs.yml's nav."""
    docs_dir = Path(config.docs_dir)
    listed = set(_nav_paths(config.nav))
    new = sorted(
        path.relative_to(docs_dir).as_posix()
        for path in docs_dir.rglob("*.md")
        if path.relative_to(docs_dir).as_posix() not in listed
    )
    if new and config.nav is not None:
        log.info("pages not in mkdocs.yml's nav yet, listed under More guides: %s", ", ".join(new))
        titles = [{Path(page).stem.replace("_", " ").replace("-", " ").capitalize(): page} for page in new]
        config.nav.append({"More guides": titles})


def _notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook, else its file name."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def _add_new_notebooks(config: MkDocsConfig) -> None:
    """Every numbered notebook is a page: one that the nav's Notebooks section does not list yet
    (just added) is appended to it, titled by its first heading."""
    listed = set(_nav_paths(config.nav))
    section = next(
        (item["Notebooks"] for item in config.nav or [] if isinstance(item, dict) and "Notebooks" in item), None
    )
    if section is None:
        return
    for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        page = f"notebooks/{notebook.name}"
        if page not in listed:
            log.info("notebook not in mkdocs.yml's nav yet, appended: %s", page)
            section.append({f"{int(notebook.name[:2])} {_notebook_title(notebook)}": page})


def _executed_dir() -> Path | None:
    given = os.environ.get(EXECUTED_ENV)
    return (ROOT / given).resolve() if given else None


def _cell_sources(notebook: dict[str, Any]) -> list[tuple[str, str]]:
    return [(cell["cell_type"], "".join(cell["source"])) for cell in notebook["cells"]]


def _check_executed(executed: Path, source: Path) -> None:
    """The executed copy of ``source`` is that notebook, run to the end without an error."""
    if not executed.is_file():
        raise PluginError(f"{EXECUTED_ENV}: {executed} is missing: was {source.name} executed?")
    run = json.loads(executed.read_text(encoding="utf-8"))
    if _cell_sources(run) != _cell_sources(json.loads(source.read_text(encoding="utf-8"))):
        raise PluginError(f"{EXECUTED_ENV}: {executed} is not the notebook {source} is now (stale copy?)")
    for index, cell in enumerate(run["cells"]):
        if cell["cell_type"] != "code":
            continue
        if any(output["output_type"] == "error" for output in cell["outputs"]):
            raise PluginError(f"{source.name}: cell {index} ended in an error when the tests executed it")
        if cell.get("execution_count") is None and "".join(cell["source"]).strip():
            raise PluginError(f"{source.name}: cell {index} did not run when the tests executed it")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    if os.environ.get("TASKQ_DOCS_EXECUTE", "1").lower() in ("0", "false", "no"):
        _jupyter_config(config)["execute"] = False
    if _executed_dir() is not None:
        # Rendered as the tests left them; no cache (those outputs are new every run, and the
        # cache's clean-up would drop a developer's cached executions).
        _jupyter_config(config)["execute"] = False
        _jupyter_config(config)["cache"] = False
    _add_new_guides(config)
    _add_new_notebooks(config)
    _npm_assets()
    return config


def on_pre_build(config: MkDocsConfig) -> None:
    """Start the notebooks' private server (only when they are executed)."""
    global _server
    if not _jupyter_config(config)["execute"] or _server is not None:
        return
    _server = EmbeddedServer().start()
    log.info("notebooks run on a private %s at %s", _server.kind, _server.url)
    for key in ENV_KEYS:
        _saved_env[key] = os.environ.get(key)
    os.environ["TASKQ_REDIS_URL"] = _server.url
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NOTEBOOKS), _saved_env["PYTHONPATH"]]))


def _stop_server() -> None:
    global _server
    if _server is None:
        return
    _server.stop()
    _server = None
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved_env.clear()


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """docs/readme.md is README.md (one snippet line). README.md links the guides as
    ``docs/X.md`` from the repository's root; on the site its page sits beside them, so the
    snippet is expanded here, where those links can lose the ``docs/``."""
    if page.file.src_uri == "readme.md" and markdown.strip() == '--8<-- "README.md"':
        return (ROOT / "README.md").read_text(encoding="utf-8").replace("](docs/", "](")
    return markdown


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """README.md is written for the repository's root: on its page (readme/, one level down
    from the site's root, which is docs/) a raw ``<img src="docs/...">`` points at ``../``."""
    if page.file.src_uri == "readme.md":
        return html.replace('src="docs/', 'src="../')
    return html


#: nbconvert's loader of the Jupyter widget manager (from unpkg.com), on the page of a notebook
#: that displayed widgets.
_WIDGET_LOADER = re.compile(r"<script>\s*\(function\(\) \{\s*function addWidgetsRenderer\(\).*?</script>", re.S)


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    """The site loads nothing from elsewhere, and without a kernel a notebook page shows each
    widget's static fallback (the lessons display it after the live widget): the widget
    manager's loader goes."""
    return _WIDGET_LOADER.sub("", output)


def on_post_build(config: MkDocsConfig) -> None:
    _stop_server()


def on_build_error(error: Exception) -> None:
    _stop_server()


def on_shutdown() -> None:
    _stop_server()


@event_priority(50)  # before mkdocs-jupyter's on_files, so that it takes the notebooks added here
def on_files(files: Files, config: MkDocsConfig) -> Files:
    def add(src_uri: str, content: str | bytes) -> None:
        files.append(File.generated(config, src_uri, content=content))

    add("reference/cli.md", gen_cli_ref.cli_reference())
    schema = gen_openapi.openapi_schema()
    add("reference/http-api.md", gen_openapi.http_api_page(schema))
    add("reference/openapi.json", json.dumps(schema, indent=2))
    page, images = gen_bench_page.bench_page()
    add("benchmarks.md", page)
    for name, png in images.items():
        add(f"bench/{name}", png)
    executed = _executed_dir()
    if executed is not None and executed.name != "notebooks":
        raise PluginError(f"{EXECUTED_ENV}={executed}: the folder must be named notebooks (its page path)")
    for notebook in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        # A plain File read from the repository root (mkdocs-jupyter's wrapper does not take
        # generated files): the page is notebooks/NAME, the source the notebook where it lives,
        # or its executed copy in DIR/NAME (DIR's parent is then the root it is read from).
        src_root = ROOT
        if executed is not None:
            _check_executed(executed / notebook.name, notebook)
            src_root = executed.parent
        files.append(File(f"notebooks/{notebook.name}", str(src_root), config.site_dir, config.use_directory_urls))
    for site_path, npm_path in ASSETS.items():
        files.append(File.generated(config, site_path, abs_src_path=str(JS_DIR / "node_modules" / npm_path)))
    return files
