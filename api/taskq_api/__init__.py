"""taskq_api: the HTTP and WebSocket API of taskq (``pip install taskq[api]``, ``taskq serve APP``)."""

from taskq_api.app import create_app
from taskq_api.settings import Settings

__all__ = ["Settings", "create_app"]
