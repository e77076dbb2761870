"""taskq_api: the HTTP and WebSocket API of taskq (``pip install taskq[api]``, ``taskq serve APP``).

``create_app`` and ``Settings`` are imported on first use (PEP 562): the ``taskq`` command loads
this package for its ``serve`` plug-in, and importing FastAPI there cost every ``taskq`` process
about half a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskq_api.app import create_app
    from taskq_api.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from taskq_api.app import create_app

        return create_app
    if name == "Settings":
        from taskq_api.settings import Settings

        return Settings
    raise AttributeError(f"module 'taskq_api' has no attribute {name!r}")
