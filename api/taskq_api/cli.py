"""``taskq serve APP``: the HTTP API under uvicorn (a ``taskq.cli`` entry-point plug-in).

Kept light: uvicorn and the app are imported when the command runs, not when ``taskq`` starts.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Annotated

import typer

serve = typer.Typer(add_completion=False)

LOCALHOST = "127.0.0.1"
APP_ENV = "TASKQ_API_APP"
INSECURE_ENV = "TASKQ_API_INSECURE_LOCAL"


def app_factory() -> object:
    """What each uvicorn worker process calls (``--workers`` > 1 needs an import string)."""
    from taskq_api.app import create_app
    from taskq_api.settings import Settings

    return create_app(os.environ[APP_ENV], Settings.from_env(insecure_local=os.environ.get(INSECURE_ENV) == "1"))


@serve.command()
def run(
    ctx: typer.Context,
    app_path: Annotated[
        str, typer.Argument(metavar="APP", help="The TaskQueue the workers load, as module:attribute.")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "0.0.0.0",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes.")] = 1,
    insecure_local: Annotated[
        bool,
        typer.Option("--insecure-local", help="Run with no token, bound to 127.0.0.1 only (--host is ignored)."),
    ] = False,
) -> None:
    """Serve the HTTP API for APP. Needs a bearer token in TASKQ_API_TOKEN or the file
    TASKQ_API_TOKEN_FILE, unless --insecure-local."""
    import uvicorn

    from taskq.cli import reported_errors, settings_of
    from taskq_api.app import create_app, load_app
    from taskq_api.settings import Settings

    cli_settings = settings_of(ctx)
    with reported_errors():
        settings = Settings.from_env(insecure_local=insecure_local and not _has_token())
        if settings.token is None:
            host = LOCALHOST
        if cli_settings.url:  # before the APP is imported: its TaskQueue() reads it
            os.environ["TASKQ_REDIS_URL"] = cli_settings.url
        source = load_app(app_path)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if workers > 1:
        _say_dashboard()
        os.environ[APP_ENV] = app_path
        os.environ[INSECURE_ENV] = "1" if settings.token is None else "0"
        uvicorn.run("taskq_api.cli:app_factory", factory=True, host=host, port=port, workers=workers, access_log=False)
        return
    _say_dashboard()
    typer.echo(json.dumps({"serving": app_path, "url": f"http://{host}:{port}", "auth": settings.token is not None}))
    uvicorn.run(create_app(source, settings), host=host, port=port, access_log=False, log_level="warning")


def _say_dashboard() -> None:
    """One line on stderr when the dashboard is not built (the API is served all the same)."""
    from taskq_api.static import BUILD_HINT, built

    if not built():
        typer.echo(f"taskq serve: {BUILD_HINT}", err=True)


def _has_token() -> bool:
    from taskq_api.settings import TOKEN_ENV, TOKEN_FILE_ENV

    return bool(os.environ.get(TOKEN_ENV) or os.environ.get(TOKEN_FILE_ENV))
