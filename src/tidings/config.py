"""Settings from ``TIDINGS_*`` environment variables.

Defaults make ``make run`` work with nothing set: an embedded SQLite file, a file outbox for email and
SMS, and a development secret. Outside development a placeholder secret refuses to start.
"""

from __future__ import annotations

import math
import re
from email.utils import getaddresses
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEVELOPMENT_SECRET = "dev-secret-change-me"
DATABASE_URL_FORMS = "use sqlite:///path/to/file.db or postgresql+psycopg://user@host:5432/db"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# An address's shape: something, one "@", something, no spaces.
_MAILBOX = re.compile(r"[^@\s]+@[^@\s]+")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./tidings.db"
    secret_key: str = DEVELOPMENT_SECRET
    public_url: str = "http://127.0.0.1:8000"
    internal_token: str | None = None
    email_transport: str = "file://./outbox/email"
    sms_transport: str = "file://./outbox/sms"
    sms_api_base_url: str | None = None
    # Senders for campaigns that name none ("from" omitted in the send request).
    email_from: str = "Tidings <noreply@localhost>"
    sms_from: str | None = None
    # Request bodies above this many bytes are refused before they are read whole (413).
    max_body_bytes: int = 1_000_000
    max_import_bytes: int = 16_000_000
    idempotency_ttl_hours: int = 48
    worker_batch_size: int = 200
    worker_lease_seconds: float = 120.0
    worker_poll_seconds: float = 0.5
    # Transient failures retry after base, 2*base, 4*base, … seconds (capped at an hour): with
    # these, for about four hours, as mail servers keep retrying; five tries 30 s apart failed a
    # whole campaign on a relay outage of seven minutes.
    worker_max_attempts: int = 10
    worker_retry_base_seconds: float = 60.0
    # Parallel transport connections per worker: SMTP carries one message at a time per
    # connection, so connections in threads overlap their round trips. file:// outboxes are
    # written by one thread whatever this says: local writes have nothing to overlap.
    worker_concurrency: int = 4
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _a_database_tidings_speaks(cls, value: str) -> str:
        """SQLite or PostgreSQL (through psycopg 3), said at start-up rather than as a driver's
        traceback at the first query. ``postgres://`` and ``postgresql://`` (what hosting
        providers hand out) mean psycopg 3, the driver Tidings installs."""
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"not a database URL; {DATABASE_URL_FORMS}") from None
        backend, _, driver = url.drivername.partition("+")
        if backend == "sqlite" and driver in ("", "pysqlite"):
            return value
        if backend in ("postgres", "postgresql") and driver in ("", "psycopg"):
            return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        raise ValueError(f"{url.drivername!r} is not a database Tidings uses; {DATABASE_URL_FORMS}")

    @field_validator("log_level")
    @classmethod
    def _a_level_logging_knows(cls, value: str) -> str:
        """Any case (``debug``); an unknown level was a traceback from uvicorn or logging."""
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator(
        "worker_batch_size",
        "worker_concurrency",
        "worker_max_attempts",
        "worker_lease_seconds",
        "worker_poll_seconds",
        "max_body_bytes",
        "max_import_bytes",
        "idempotency_ttl_hours",
    )
    @classmethod
    def _positive(cls, value: float) -> float:
        """As the worker's own flags require (``--batch-size 0`` is refused): a batch size of -5
        claimed one message at a time, a body limit of -1 refused every POST, and a negative
        retention silently turned idempotency off."""
        if value <= 0:
            raise ValueError(f"must be greater than 0, not {value}")
        return value

    @field_validator("worker_lease_seconds", "worker_poll_seconds", "worker_retry_base_seconds")
    @classmethod
    def _finite(cls, value: float) -> float:
        """``nan`` and ``inf`` pass every comparison or overflow later, mid-batch."""
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number of seconds, not {value}")
        return value

    @field_validator("worker_retry_base_seconds")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError(f"must be 0 or more, not {value}")
        return value

    @field_validator("public_url", "sms_api_base_url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        """An http(s) URL with a host: the unsubscribe links (RFC 8058's List-Unsubscribe must
        be a URL) and Message-IDs are built on ``public_url``; ``mail.example.com`` made
        ``<mail.example.com/u/...>``, which no mail client can open."""
        if value is None:
            return None
        parts = urlsplit(value.strip())
        refusal = f"{value!r} is not an http(s) URL; write it as https://host[:port]"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(refusal)
        try:
            parts.port  # noqa: B018 -- raises for a port that is not one (":abc", ":99999")
        except ValueError:
            raise ValueError(refusal) from None
        return value.strip()

    @field_validator("email_from")
    @classmethod
    def _a_sender(cls, value: str) -> str:
        """One address, with or without a name: ``notanaddress`` went out as the ``From`` of
        every email sent without one. (``noreply@localhost``, the default, is an address a
        relay may accept; the send API's ``from`` is checked more strictly.)"""
        parsed = getaddresses([value])
        one_line = "\r" not in value and "\n" not in value
        if not one_line or len(parsed) != 1 or not _MAILBOX.fullmatch(parsed[0][1]):
            raise ValueError(
                f"{value!r} is not a sender; write it as name@example.com or "
                "'Name <name@example.com>'"
            )
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.environment == "production" and self.secret_key == DEVELOPMENT_SECRET:
            raise ValueError("TIDINGS_SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests clear the cache after changing the environment."""
    return Settings()
