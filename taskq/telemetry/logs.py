"""Worker log formatters: ``taskq worker --log-format text|json``."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from taskq.errors import InvalidOption

#: Attributes a worker puts on its task log records (``extra=``), written by the JSON formatter.
TASK_LOG_FIELDS = ("task_id", "task", "queue", "attempt", "worker", "duration_ms", "outcome", "error_type")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the task fields a worker
    attaches (task_id, task, queue, attempt, worker, duration_ms, outcome, error_type)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in TASK_LOG_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_formatter(kind: str) -> logging.Formatter:
    """The formatter for ``taskq worker --log-format``: 'text' (human-readable) or 'json'."""
    if kind == "json":
        return JsonLogFormatter()
    if kind == "text":
        return logging.Formatter(TEXT_LOG_FORMAT)
    raise InvalidOption(f"log format is 'text' or 'json', got {kind!r}")
