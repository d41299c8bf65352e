"""An ``Idempotency-Key`` belongs to the caller the route admits, and replays nothing to anyone
else: not another organization's owner behind the same proxy header, not a revoked key, not an
ended session, not a request the route would refuse."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.dashboard.test_login import login, page_csrf
from tests.factories import ApiClient, auth, make_audience, make_key, make_org, make_user
from tidings import middleware
from tidings.config import get_settings
from tidings.models import ApiKey, Audience, IdempotencyKey, Organization
from tidings.timeutil import utcnow

CSV = "email,name\nvic@example.com,Vic\nnot-an-email,Row3\n"
PROXY = {"Authorization": "Basic cHJveHk6cHc="}  # a reverse proxy's login, which the routes ignore


def _owner(app: Any, db: Session, email: str) -> tuple[ApiClient, dict[str, str], Organization]:
    """A logged-in owner of a new organization: the browser, the headers its page sends (CSRF,
    the proxy's) and the organization."""
    org = make_org(db, name=email)
    make_user(db, org, email, "owner")
    browser = login(ApiClient(app), email)
    return browser, {**PROXY, "X-CSRF-Token": page_csrf(browser)}, org


def _import(browser: ApiClient, audience_id: str, headers: dict[str, str]) -> Any:
    return browser.post(
        f"/api/internal/audiences/{audience_id}/import-csv",
        content=CSV,
        headers={**headers, "Content-Type": "text/csv", "Idempotency-Key": "k-1"},
    )


def test_owners_behind_one_proxy_header_never_share_a_key(app: Any, db: Session) -> None:
    alice, alice_headers, org = _owner(app, db, "alice@a.example")
    bob, bob_headers, _ = _owner(app, db, "bob@b.example")
    audience = make_audience(db, org)
    first = _import(alice, audience.id, alice_headers)
    assert first.status_code == 200, first.text
    # Bob (another organization) sends the same key, body and proxy header: his own 404.
    bobs = _import(bob, audience.id, bob_headers)
    assert bobs.status_code == 404 and "idempotent-replayed" not in bobs.headers
    assert "not-an-email" not in bobs.text
    # The proxy header alone, no session: a 401, not Alice's answer.
    anonymous = _import(ApiClient(app), audience.id, dict(PROXY))
    assert anonymous.status_code == 401 and "idempotent-replayed" not in anonymous.headers
    # Without the CSRF token, or after logging out: the route's 403 and 401.
    no_csrf = _import(alice, audience.id, dict(PROXY))
    assert no_csrf.status_code == 403 and "idempotent-replayed" not in no_csrf.headers
    again = _import(alice, audience.id, alice_headers)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    alice.post("/logout", headers={"X-CSRF-Token": alice_headers["X-CSRF-Token"]})
    ended = _import(alice, audience.id, alice_headers)
    assert ended.status_code == 401 and "idempotent-replayed" not in ended.headers


def test_a_member_gets_the_routes_403_not_the_owners_answer(app: Any, db: Session) -> None:
    alice, alice_headers, org = _owner(app, db, "alice@a.example")
    audience = make_audience(db, org)
    assert _import(alice, audience.id, alice_headers).status_code == 200
    make_user(db, org, "mia@a.example", "member")
    mia = login(ApiClient(app), "mia@a.example")
    refused = _import(mia, audience.id, {**PROXY, "X-CSRF-Token": page_csrf(mia)})
    assert refused.status_code == 403 and "idempotent-replayed" not in refused.headers


def test_a_revoked_key_replays_nothing(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    secret = make_key(db, org)
    headers = {**auth(secret), "Idempotency-Key": "create-1"}
    body = {"name": "Spring", "description": "private notes"}
    assert client.post("/v1/audiences", json=body, headers=headers).status_code == 201
    db.execute(update(ApiKey).where(ApiKey.org_id == org.id).values(revoked_at=utcnow()))
    db.commit()
    retry = client.post("/v1/audiences", json=body, headers=headers)
    assert retry.status_code == 401 and "private notes" not in retry.text


def test_the_scheme_is_spelt_any_way(client: ApiClient, db: Session) -> None:
    """``bearer`` and ``Bearer`` are the same key, so the same caller: one audience."""
    org = make_org(db)
    secret = make_key(db, org)
    body = {"name": "Once"}
    for scheme in ("Bearer", "bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {secret}", "Idempotency-Key": "once"}
        assert client.post("/v1/audiences", json=body, headers=headers).status_code == 201
    assert db.scalar(select(func.count()).select_from(Audience)) == 1


def test_two_keys_of_one_organization_keep_their_own(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    first, second = make_key(db, org), make_key(db, org)
    body = {"name": "Twice"}
    for secret in (first, second):
        headers = {**auth(secret), "Idempotency-Key": "same"}
        response = client.post("/v1/audiences", json=body, headers=headers)
        assert response.status_code == 201 and "idempotent-replayed" not in response.headers
    assert db.scalar(select(func.count()).select_from(Audience)) == 2


def test_expired_records_of_every_caller_are_swept(
    client: ApiClient, db: Session, monkeypatch: Any
) -> None:
    """A key that is never sent again is still forgotten once the retention window has passed:
    a keyed POST sweeps every caller's expired records (at most once per ``PURGE_EVERY``)."""
    org = make_org(db)
    first, second = make_key(db, org), make_key(db, org)
    for secret, key in ((first, "old-1"), (second, "old-2"), (first, "recent")):
        headers = {**auth(secret), "Idempotency-Key": key}
        assert client.post("/v1/audiences", json={"name": key}, headers=headers).status_code == 201
    ttl = timedelta(hours=get_settings().idempotency_ttl_hours)
    db.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key.in_(["old-1", "old-2"]))
        .values(created_at=utcnow() - ttl - timedelta(minutes=1))
    )
    db.commit()
    monkeypatch.setattr(middleware, "_purge_clock", middleware._Every(middleware.PURGE_EVERY))
    headers = {**auth(second), "Idempotency-Key": "new"}
    assert client.post("/v1/audiences", json={"name": "new"}, headers=headers).status_code == 201
    assert sorted(db.scalars(select(IdempotencyKey.key))) == ["new", "recent"]
    # Within PURGE_EVERY, a newly expired record waits for the next sweep.
    db.execute(update(IdempotencyKey).values(created_at=utcnow() - ttl - timedelta(minutes=1)))
    db.commit()
    headers = {**auth(first), "Idempotency-Key": "newer"}
    assert client.post("/v1/audiences", json={"name": "x"}, headers=headers).status_code == 201
    assert sorted(db.scalars(select(IdempotencyKey.key))) == ["new", "newer", "recent"]
