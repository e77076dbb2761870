"""Serving the built dashboard (``dashboard_dist/``, made by ``scripts/build_dashboard.sh``).

``/`` and every client route (any GET that no API route answers, outside ``/api/``) get
``index.html`` with ``Cache-Control: no-cache``; ``/assets/*`` (file names carry a content hash)
are cached for a year as immutable. Without a build the API is served as usual, and ``/``
says in one line how to build the dashboard.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

DIST = Path(__file__).resolve().parent / "dashboard_dist"
BUILD_HINT = "the dashboard is not built: run 'bash scripts/build_dashboard.sh' (needs Node.js and npm) and restart"
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
#: Paths that are never the dashboard's, even when no route answers them.
NOT_DASHBOARD = ("/api/", "/assets/", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/metrics")
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def built(dist: Path | None = None) -> bool:
    return ((dist or DIST) / "index.html").is_file()


def content_security_policy(index_html: str) -> str:
    """Scripts only from this origin plus the page's own inline scripts (by hash); no plugins,
    no framing. Task data is rendered as text by React; this is the second line."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in INLINE_SCRIPT.findall(index_html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


class ImmutableAssets(StaticFiles):
    """Vite's hashed assets: a changed file gets a new name, so each name is cached for good."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = IMMUTABLE
        return response


def add_dashboard(app: FastAPI, dist: Path | None = None) -> bool:
    """Serve the dashboard (``dist``, default :data:`DIST`) at ``/`` if it is built; True if it is."""
    dist = dist or DIST
    if not built(dist):

        async def not_built(_: Request) -> PlainTextResponse:
            return PlainTextResponse(f"taskq API is up at /api/v1 (docs at /docs); {BUILD_HINT}\n", status_code=404)

        app.add_route("/", not_built, methods=["GET"], include_in_schema=False)  # a page, not an API route

        return False

    index = (dist / "index.html").read_text()
    headers = {
        "Cache-Control": NO_CACHE,
        "Content-Security-Policy": content_security_policy(index),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    def page() -> HTMLResponse:
        return HTMLResponse(index, headers=headers)

    async def dashboard(_: Request) -> HTMLResponse:
        return page()

    app.add_route("/", dashboard, methods=["GET"], include_in_schema=False)  # a page, not an API route

    if (dist / "assets").is_dir():
        app.mount("/assets", ImmutableAssets(directory=dist / "assets"), name="dashboard-assets")

    @app.exception_handler(StarletteHTTPException)
    async def spa_fallback(request: Request, exc: StarletteHTTPException) -> Response:
        # A client route (/queues/emails, /tasks/…) reloaded in the browser: no API route
        # answers it, so the page does and its router takes over.
        path = request.url.path
        last = path.rsplit("/", 1)[-1]
        if (
            exc.status_code == 404
            and request.method in ("GET", "HEAD")
            and not path.startswith(NOT_DASHBOARD)
            and "." not in last
        ):
            return page()
        return await http_exception_handler(request, exc)

    return True
