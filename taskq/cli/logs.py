"""Logging set-up for the long-running commands (``taskq worker``)."""

from __future__ import annotations

import enum
import logging

from taskq.telemetry import log_formatter


class LogLevel(enum.StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


def configure_logging(level: str, log_format: str) -> None:
    """Send log records at ``level`` and above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
