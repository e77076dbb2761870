"""taskq's script calls in Redis's ``INFO commandstats``: FCALL of its library, or EVALSHA
where the server has no Redis Functions (:mod:`taskq.functions`), counted together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The commands a taskq script call goes as.
SCRIPT_COMMANDS = ("fcall", "evalsha")


def script_calls(commandstats: Mapping[str, Any]) -> tuple[int, float]:
    """The calls and the µs of taskq's script calls in a redis-py ``info("commandstats")`` reply
    (the commands the scripts run are included in the µs: Redis counts them inside the call)."""
    entries = [commandstats.get(f"cmdstat_{command}", {}) for command in SCRIPT_COMMANDS]
    return sum(int(e.get("calls", 0)) for e in entries), sum(float(e.get("usec", 0)) for e in entries)
