"""Settings: what ``TIDINGS_DATABASE_URL`` may say."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tidings.config import Settings


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///./tidings.db", "sqlite:///./tidings.db"),
        ("postgresql+psycopg://u@db:5432/t", "postgresql+psycopg://u@db:5432/t"),
        # What hosting providers hand out: the driver Tidings installs is psycopg 3.
        ("postgres://u:p%40ss@db/t", "postgresql+psycopg://u:p%40ss@db/t"),
        ("postgresql://u@db/t", "postgresql+psycopg://u@db/t"),
    ],
)
def test_database_urls_tidings_can_use(given: str, used: str) -> None:
    assert Settings(database_url=given).database_url == used


@pytest.mark.parametrize(
    "given", ["bogus://x", "mysql://root@localhost/db", "postgresql+psycopg2://db/t", "nonsense"]
)
def test_other_database_urls_are_refused_at_start_up(given: str) -> None:
    with pytest.raises(ValidationError, match=r"sqlite:///path/to/file\.db or postgresql"):
        Settings(database_url=given)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("public_url", "mail.example.com", "not an http"),
        ("public_url", "ftp://mail.example.com", "not an http"),
        ("public_url", "https://", "not an http"),
        ("sms_api_base_url", "notaurl", "not an http"),
        ("worker_lease_seconds", "inf", "finite"),
        ("worker_poll_seconds", "nan", "finite"),
        ("worker_retry_base_seconds", "nan", "finite"),
        ("worker_retry_base_seconds", "-1", "0 or more"),
        ("public_url", "http://mail.example.com:abc", "not an http"),
        ("public_url", "https://mail.example.com:99999", "not an http"),
        ("max_body_bytes", "-1", "greater than 0"),
        ("max_import_bytes", "0", "greater than 0"),
        ("idempotency_ttl_hours", "-5", "greater than 0"),
        ("email_from", "notanaddress", "not a sender"),
        ("email_from", "a@example.com, b@example.com", "not a sender"),
        ("email_from", "Team <a@example.com>\r\nBcc: x@example.com", "not a sender"),
    ],
)
def test_settings_the_worker_would_trip_on_are_refused_at_start_up(
    field: str, value: str, message: str
) -> None:
    """Each was accepted and then broke mid-batch (leaving messages 'sending') or built
    unsubscribe links no mail client can open."""
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_public_urls_keep_their_path() -> None:
    settings = Settings(
        public_url=" https://mail.example.com/tidings ", worker_retry_base_seconds=0
    )
    assert settings.public_url == "https://mail.example.com/tidings"


@pytest.mark.parametrize(
    "sender", ["Tidings <noreply@localhost>", "hello@example.com", "Team <hello@example.com>"]
)
def test_senders_the_worker_can_use(sender: str) -> None:
    assert Settings(email_from=sender).email_from == sender
