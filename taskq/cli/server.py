"""``taskq server``: a Redis-compatible server in the foreground."""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Annotated

import typer

from taskq.cli.common import print_error, print_note, reported_errors
from taskq.server import EmbeddedServer, Kind


@contextlib.contextmanager
def stop_on_signals(signals: Sequence[signal.Signals] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while inside; the old handlers come back after."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in signals}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (so a server could not bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def _announce(server: EmbeddedServer) -> None:
    typer.echo(server.url)
    typer.echo(f"export TASKQ_REDIS_URL={server.url}")
    print_note(f"taskq server ({server.kind}) is running; Ctrl-C to stop", style="green")
    typer.get_text_stream("stdout").flush()


def server(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on; 0 picks a free one.")] = 0,
    kind: Annotated[
        Kind | None,
        typer.Option("--kind", help="Server to run (default: the first found, in this order).", show_default=False),
    ] = None,
) -> None:
    """Run a Redis-compatible server in the foreground (no persistence) until Ctrl-C or SIGTERM.

    Prints its URL first (redis://127.0.0.1:PORT/0), so other shells and workers can share it.
    """
    embedded = EmbeddedServer(kind=kind, port=port)
    if port and port_in_use(embedded.host, port):
        print_error(f"port {port} is busy: try another (--port 0 picks a free one)")
        raise typer.Exit(1)
    with stop_on_signals() as stop:
        with reported_errors():
            embedded.start()
        try:
            _announce(embedded)
            while not stop.wait(0.2):
                pass
        finally:
            embedded.stop()
    print_note("taskq server stopped", style="green")
