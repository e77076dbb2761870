"""Task progress: ``taskq.current_task().progress(done, total, message)``, checked here and
written by the worker (:mod:`taskq.execution`) with ``progress.lua``, at most once per
:data:`PROGRESS_INTERVAL_S` per task, so a tight loop cannot flood Redis; the last value
reported is always written. No I/O here."""

from __future__ import annotations

import json
import math
from typing import Any

from taskq.errors import InvalidOption
from taskq.ops_base import PlanSettings, no_result, script_call
from taskq.plan import Plan

#: Shortest pause between two progress writes of one task.
PROGRESS_INTERVAL_S = 0.5
MAX_MESSAGE_CHARS = 200


def progress_json(done: float, total: float | None, message: str) -> str:
    """The progress record ``{"done", "total", "message"}``; bad values raise InvalidOption."""
    for label, value in (("done", done), ("total", total)):
        if value is None and label == "total":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidOption(f"progress {label} must be a finite number >= 0, got {value!r}")
    if not isinstance(message, str):
        raise InvalidOption(f"progress message must be a string, got {message!r}")
    body: dict[str, Any] = {"done": done, "total": total, "message": message[:MAX_MESSAGE_CHARS]}
    return json.dumps(body, separators=(",", ":"))


def progress_plan(
    settings: PlanSettings, queue: str, task_id: str, token: str, value_json: str, worker_id: str, attempt: int
) -> Plan[None]:
    """Write a running task's progress, fenced by its lease token (a lost lease writes nothing;
    the final value of an attempt that just ended is still written, see progress.lua)."""
    k = settings.queue_keys(queue)
    argv = [task_id, token, value_json, settings.events_maxlen, worker_id, attempt]
    return Plan([script_call("progress", [k.task(task_id), k.events], argv)], no_result)
