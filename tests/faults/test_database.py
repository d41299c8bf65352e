"""PostgreSQL faults: the database goes away (every connection cut, new ones refused) and comes
back; backends are terminated between and during requests. The API answers 503 with the error
envelope while it is down, recovers by itself, and a send is all or nothing."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from tests.campaigns.factories import add_bulk_members, make_template
from tests.factories import ApiClient, auth, make_audience, make_key, make_org
from tests.faults.proxy import CuttableProxy
from tidings import deps
from tidings.audiences import service as audiences_service
from tidings.config import get_settings
from tidings.db import make_engine, reset_engine
from tidings.models import Campaign, Message


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("a PostgreSQL server fault")


@pytest.fixture
def proxy(
    postgres_only: None, database_url: str, settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CuttableProxy]:
    """The app reaches the database through the proxy; the test's own session does not."""
    url = make_url(database_url)
    cut = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    cut.start()
    monkeypatch.setenv(
        "TIDINGS_DATABASE_URL", url.set(port=cut.port).render_as_string(hide_password=False)
    )
    get_settings.cache_clear()
    reset_engine()
    yield cut
    cut.stop()
    reset_engine()


def _assert_503(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.headers.get("retry-after")


def test_database_down_is_503_and_recovery_is_automatic(proxy: CuttableProxy, db: Session) -> None:
    from tidings.app import create_app

    headers = auth(make_key(db, make_org(db)))
    with ApiClient(create_app()) as client:
        assert client.get("/v1/audiences", headers=headers).status_code == 200
        proxy.stop()
        _assert_503(client.get("/v1/audiences", headers=headers))
        _assert_503(client.post("/v1/audiences", headers=headers, json={"name": "Down"}))
        _assert_503(
            client.post(
                "/v1/audiences",
                headers={**headers, "Idempotency-Key": "while-down"},
                json={"name": "Down"},
            )
        )
        _assert_503(client.get("/healthz"))
        proxy.start()
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/audiences", headers=headers).status_code == 200
        created = client.post(
            "/v1/audiences",
            headers={**headers, "Idempotency-Key": "while-down"},
            json={"name": "Down"},
        )
        assert created.status_code == 201, created.text


def _terminate_app_backends(database_url: str) -> int:
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            return len(
                connection.execute(
                    text(
                        # Wait (up to 5 s) until each backend has exited and closed its socket.
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )
    finally:
        admin.dispose()


def test_terminated_backends_are_replaced_without_an_error(
    postgres_only: None, client: ApiClient, db: Session, database_url: str
) -> None:
    headers = auth(make_key(db, make_org(db)))
    for _ in range(3):
        assert client.get("/v1/audiences", headers=headers).status_code == 200
        db.close()
        assert _terminate_app_backends(database_url) >= 1
        # The pool sees that the server closed its connection and opens a new one.
        assert client.get("/v1/audiences", headers=headers).status_code == 200


def test_a_live_pooled_connection_is_handed_out_without_a_ping(
    postgres_only: None, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool asks the server nothing about a connection it has not closed (no round trip per
    checkout); one the server closed is pinged, found dead and replaced before anyone uses it."""
    engine = make_engine(database_url)
    pings: list[int] = []
    do_ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: Any) -> bool:
        pings.append(1)
        return do_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
    try:
        with engine.connect() as connection:
            first = connection.scalar(text("SELECT pg_backend_pid()"))
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.scalar(text("SELECT pg_backend_pid()")) == first
        assert pings == []
        assert _terminate_app_backends(database_url) >= 1
        with engine.connect() as connection:
            replaced = connection.scalar(text("SELECT pg_backend_pid()"))
        assert replaced != first
        assert pings == [1]
    finally:
        engine.dispose()


def test_a_send_cut_mid_way_is_all_or_nothing(
    postgres_only: None, client: ApiClient, db: Session, database_url: str
) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    make_template(db, org)
    audience = make_audience(db, org, "Big")
    total = 6000
    add_bulk_members(db, org, audience, total)
    db.close()
    rng = random.Random(8)
    outcomes = []
    for attempt in range(6):
        result: dict[str, Any] = {}

        def send(result: dict[str, Any] = result, attempt: int = attempt) -> None:
            result["response"] = client.post(
                f"/v1/audiences/{audience.id}/send",
                headers=headers,
                json={
                    "from": "a@example.com",
                    "template": "weekly-newsletter",
                    "variables": {"attempt": attempt},
                },
            )

        thread = threading.Thread(target=send)
        thread.start()
        threading.Event().wait(rng.uniform(0.0, 0.4))
        _terminate_app_backends(database_url)
        thread.join(60)
        response = result["response"]
        assert response.status_code in (200, 201, 503), response.text
        outcomes.append(response.status_code)
    db.expire_all()
    campaigns = db.scalars(select(Campaign).where(Campaign.audience_id == audience.id)).all()
    for campaign in campaigns:
        messages = db.scalar(
            select(func.count()).select_from(Message).where(Message.campaign_id == campaign.id)
        )
        assert messages == total, f"campaign {campaign.id} has {messages} of {total} messages"
    assert len(campaigns) == sum(1 for s in outcomes if s != 503), outcomes
    print("OUTCOMES", outcomes)


def test_an_exhausted_connection_pool_is_503(
    client: ApiClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connection busy for the pool's whole timeout (held by long requests): a 503 to
    retry, like a database that is down, not a 500."""
    headers = auth(make_key(db, make_org(db)))

    def exhausted(*_args: object) -> None:
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    monkeypatch.setattr(deps, "authenticate_api_key", exhausted)
    _assert_503(client.get("/v1/audiences", headers=headers))


def test_a_busy_sqlite_database_says_busy_not_unavailable(
    client: ApiClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding SQLite's write lock past the busy timeout is a 503 to retry,
    and the message does not call a busy database down."""
    headers = auth(make_key(db, make_org(db)))

    def locked(*_args: object) -> None:
        raise OperationalError(
            "BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")
        )

    monkeypatch.setattr(deps, "authenticate_api_key", locked)
    response = client.post("/v1/audiences", headers=headers, json={"name": "Busy"})
    _assert_503(response)
    assert response.json()["error"]["message"] == (
        "The database is busy with other writes; retry shortly."
    )


def test_a_deadlock_is_a_conflict_to_retry_not_an_outage(
    client: ApiClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL rolled the request back for a concurrent one (SQLSTATE class 40): a 409 to
    retry, not "the database is unavailable"."""
    headers = {**auth(make_key(db, make_org(db))), "Idempotency-Key": "raced"}
    real, calls = audiences_service.create_audience, []

    def deadlocked_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("COPY", {}, psycopg.errors.DeadlockDetected("deadlock"))
        return real(*args, **kwargs)

    monkeypatch.setattr(audiences_service, "create_audience", deadlocked_once)
    response = client.post("/v1/audiences", headers=headers, json={"name": "Raced"})
    assert response.status_code == 409
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "conflict"
    assert "retry" in response.json()["error"]["message"]
    # The retry it asks for, with the same Idempotency-Key, runs: the 409 was not stored.
    retry = client.post("/v1/audiences", headers=headers, json={"name": "Raced"})
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert len(calls) == 2
