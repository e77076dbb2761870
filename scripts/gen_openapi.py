"""The HTTP API reference, generated from the app's own OpenAPI schema.

    python scripts/gen_openapi.py            # print the schema (JSON)
    python scripts/gen_openapi.py --page     # print the Markdown page

The documentation site calls :func:`openapi_schema` and :func:`http_api_page` at build time: the
schema is what ``taskq serve`` answers at ``/openapi.json`` (``create_app`` builds it; no Redis
is contacted), served beside the page as ``openapi.json`` and rendered by Swagger UI, which the
site serves itself (npm's ``swagger-ui-dist``, copied from scripts/docs_js; no CDN). The page
also lists every route in plain Markdown, so the build checks it and the site search finds it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import taskq

METHODS = ("get", "post", "put", "patch", "delete")


def openapi_schema() -> dict[str, Any]:
    """The app's OpenAPI document, as ``GET /openapi.json`` serves it."""
    from taskq_api import Settings, create_app

    # Never connected: building the app and its schema touches no server.
    tq = taskq.AsyncTaskQueue("redis://127.0.0.1:9/0", embedded=False)
    schema: dict[str, Any] = create_app(tq, Settings(token="schema-only")).openapi()
    return schema


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def http_api_page(schema: dict[str, Any]) -> str:
    """The Markdown page: a route table from ``schema``, then the Swagger UI mount point."""
    lines = [
        "# HTTP API reference",
        "",
        f"{_cell(schema['info']['title'])} {schema['info']['version']}, generated from the app's OpenAPI "
        "schema when the site is built (`scripts/gen_openapi.py`; the same document `taskq serve` "
        "answers at `/openapi.json`): [download openapi.json](openapi.json). How to run and call the "
        "server: [the HTTP API how-to](../howto/http-api.md).",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                summary = operation.get("summary") or operation.get("description", "").split("\n")[0]
                lines.append(f"| `{method.upper()}` | `{path}` | {_cell(summary)} |")
    lines += [
        "",
        "## Every route, its parameters and schemas",
        "",
        # Raw HTML: the page is reference/http-api/index.html, its assets two levels up.
        '<link rel="stylesheet" href="../../assets/js/swagger-ui.css">',
        '<div id="swagger-ui" data-openapi="../openapi.json"></div>',
        '<script src="../../assets/js/swagger-ui-bundle.js"></script>',
        '<script src="../../assets/js/swagger-init.js"></script>',
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    schema = openapi_schema()
    print(http_api_page(schema) if "--page" in sys.argv[1:] else json.dumps(schema, indent=2))


if __name__ == "__main__":
    main()
