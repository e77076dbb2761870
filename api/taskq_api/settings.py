"""How the HTTP API is configured: one frozen dataclass, read from arguments or the environment."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from taskq import InvalidOption

#: Environment variables the settings are read from (``Settings.from_env``).
TOKEN_ENV = "TASKQ_API_TOKEN"
TOKEN_FILE_ENV = "TASKQ_API_TOKEN_FILE"

API = "/api/v1"
"""Every route but the health checks and metrics lives under this prefix."""
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BULK_ITEMS = 10_000
MAX_LIST_LIMIT = 1_000


@dataclass(frozen=True, slots=True)
class Settings:
    """The API's settings.

    ``token``: the bearer token every mutating route needs (and, with ``auth_reads``, every
    read and the WebSocket). ``None`` is only allowed with ``insecure_local`` (the server then
    binds to 127.0.0.1 only). ``cors_origins``: empty turns CORS off. ``max_body_bytes``: a
    request body past it is refused with 413 before it is parsed.
    """

    token: str | None = None
    insecure_local: bool = False
    auth_reads: bool = False
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    event_buffer: int = 4_096
    """Events held for each WebSocket client; a client further behind is disconnected."""
    log_requests: bool = True

    def __post_init__(self) -> None:
        if self.token is None and not self.insecure_local:
            raise InvalidOption(
                f"the API needs a token ({TOKEN_ENV} or {TOKEN_FILE_ENV}); "
                "for a local, unauthenticated server pass --insecure-local"
            )
        if self.token is not None and not self.token.strip():
            raise InvalidOption("the API token is empty")
        if self.max_body_bytes < 1:
            raise InvalidOption(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.event_buffer < 1:
            raise InvalidOption(f"event_buffer must be >= 1, got {self.event_buffer}")

    def accepts(self, given: str | None) -> bool:
        """True if ``given`` is the token (compared in constant time)."""
        return self.token is not None and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    @classmethod
    def from_env(cls, *, insecure_local: bool = False, **overrides: object) -> Settings:
        """The token from ``TASKQ_API_TOKEN``, else from the file ``TASKQ_API_TOKEN_FILE``."""
        token = os.environ.get(TOKEN_ENV) or None
        token_file = os.environ.get(TOKEN_FILE_ENV)
        if token is None and token_file:
            try:
                token = Path(token_file).read_text().strip() or None
            except OSError as exc:
                raise InvalidOption(f"cannot read {TOKEN_FILE_ENV}={token_file}: {exc.strerror}") from None
        return cls(token=token, insecure_local=insecure_local, **overrides)  # type: ignore[arg-type]
