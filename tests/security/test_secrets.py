"""Secrets stay secret: API keys are compared in constant time, and no key secret, password,
password hash, session token, internal token or signing key appears in logs, errors or responses."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.orm import Session

import tidings.auth
from tests.factories import (
    ApiClient,
    auth,
    make_audience,
    make_contact,
    make_key,
    make_org,
    make_user,
)
from tidings.auth import authenticate_api_key
from tidings.models import User

SECRET_KEY = "s3cr3t-signing-key-for-the-leak-test"
PASSWORD = "correct horse battery staple 42"


def test_api_key_check_uses_a_constant_time_comparison(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org(db)
    secret = make_key(db, org)
    calls: list[tuple[str, str]] = []
    real = tidings.auth.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tidings.auth.hmac, "compare_digest", spy)
    assert authenticate_api_key(db, secret) is not None
    assert calls, "the stored hash must be compared with hmac.compare_digest"
    # The lookup is by the SHA-256 of the secret, so the database never sees the secret itself.
    assert all(secret not in a and secret not in b for a, b in calls)


def test_no_secret_in_logs_errors_or_responses(
    client: ApiClient,
    db: Session,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", SECRET_KEY)
    tidings.config.get_settings.cache_clear()
    caplog.set_level(logging.DEBUG)
    org = make_org(db)
    secret = make_key(db, org)
    user = make_user(db, org, "owner@example.com", password=PASSWORD)
    password_hash = db.get(User, user.id).password_hash  # type: ignore[union-attr]
    contact = make_contact(db, org, email="alice@example.com", name="Alice")
    audience = make_audience(db, org, members=[contact])
    headers = auth(secret)
    responses = [
        client.get("/v1/audiences", headers=headers),
        client.get("/v1/audiences", headers=auth(secret + "x")),  # a near miss
        client.get("/v1/audiences", headers=auth(secret[:-1])),
        client.post("/v1/audiences", headers=headers, json={"name": ""}),
        client.post("/v1/contacts", headers=headers, json={"email": "not an email"}),
        client.post(
            "/v1/templates",
            headers=headers,
            json={
                "name": "T",
                "channel": "email",
                "subject": "{{ unsubscribe_url }}",
                "html": "<a href='{{ unsubscribe_url }}'>u</a>",
                "text": "{% if %}",
            },
        ),
        client.post(
            f"/api/internal/audiences/{audience.id}/import-csv",
            headers={
                "Authorization": "Bearer internal-test-token-wrong",
                "Content-Type": "text/csv",
            },
            content=b"email\nx@example.com\n",
        ),
        client.post("/login", data={"email": "owner@example.com", "password": PASSWORD + "!"}),
        client.post("/login", data={"email": "owner@example.com", "password": PASSWORD}),
        client.get("/overview/audiences"),
        client.get("/u/forged-token"),
        client.post("/u/forged-token"),
        client.get("/openapi.json"),
    ]
    session_token = client.cookies.get("tidings_session") or "no-session-token"
    secrets = {
        "api key": secret,
        "password": PASSWORD,
        "password hash": password_hash,
        "signing key": SECRET_KEY,
        "internal token": "internal-test-token",
        "session token": session_token,
    }
    logged = "\n".join(r.getMessage() + (r.exc_text or "") + str(r.args) for r in caplog.records)
    for name, value in secrets.items():
        assert value not in logged, f"{name} appears in the logs"
        for response in responses:
            assert value not in response.text, f"{name} in {response.request.url}"
            assert all(value not in v for v in response.headers.values() if name != "session token")
