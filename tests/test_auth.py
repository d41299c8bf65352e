"""API keys and scopes on the audiences and contacts routes: 401 without a valid key, 403 without
the scope, ``write:X`` implies ``read:X``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.auth import Principal, authenticate_api_key, parse_scopes, revoke_api_key
from tidings.errors import BadRequest
from tidings.models import ApiKey, Audience, Organization


@pytest.fixture
def org(db: Session) -> Organization:
    return make_org(db)


def _routes(audience_id: str, contact_id: str) -> list[tuple[str, str, Any, str]]:
    """Every route of the two domains, with a valid body and the scope it needs."""
    aud = f"/v1/audiences/{audience_id}"
    ids = {"contactIds": [contact_id]}
    return [
        ("GET", "/v1/audiences", None, "read:audiences"),
        ("POST", "/v1/audiences", {"name": "New"}, "write:audiences"),
        ("GET", aud, None, "read:audiences"),
        ("PATCH", aud, {"name": "Renamed"}, "write:audiences"),
        ("GET", f"{aud}/contacts", None, "read:audiences"),
        ("POST", f"{aud}/contacts", ids, "write:audiences"),
        ("DELETE", f"{aud}/contacts", ids, "write:audiences"),
        ("POST", f"{aud}/contacts/remove", ids, "write:audiences"),
        ("GET", f"{aud}/available-contacts", None, "read:audiences"),
        ("DELETE", aud, None, "write:audiences"),
        ("GET", "/v1/contacts", None, "read:contacts"),
        ("POST", "/v1/contacts", {"email": "new@example.com"}, "write:contacts"),
        ("GET", f"/v1/contacts/{contact_id}", None, "read:contacts"),
        ("PATCH", f"/v1/contacts/{contact_id}", {"name": "N"}, "write:contacts"),
        ("DELETE", f"/v1/contacts/{contact_id}", None, "write:contacts"),
    ]


@pytest.fixture
def targets(db: Session, org: Organization) -> tuple[str, str]:
    contact = make_contact(db, org, email="c@example.com")
    return make_audience(db, org).id, contact.id


def test_no_key_is_401_everywhere(client: ApiClient, targets: tuple[str, str]) -> None:
    for method, url, body, _ in _routes(*targets):
        response = client.request(method, url, json=body)
        assert response.status_code == 401, (method, url)
        assert response.json()["error"]["code"] == "unauthorized"
        bad = client.request(method, url, json=body, headers=auth("tid_not-a-real-key"))
        assert bad.status_code == 401, (method, url)
        basic = client.request(method, url, json=body, headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401, (method, url)


def test_revoked_key_is_401(client: ApiClient, db: Session, org: Organization) -> None:
    secret = make_key(db, org)
    assert client.get("/v1/audiences", headers=auth(secret)).status_code == 200
    key_id = db.scalars(select(ApiKey.id)).one()
    assert revoke_api_key(db, org.id, key_id)
    db.commit()
    response = client.get("/v1/audiences", headers=auth(secret))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_read_keys_cannot_write(
    client: ApiClient, db: Session, org: Organization, targets: tuple[str, str]
) -> None:
    reader = auth(make_key(db, org, "read:audiences,read:contacts"))
    for method, url, body, scope in _routes(*targets):
        response = client.request(method, url, json=body, headers=reader)
        if scope.startswith("read:"):
            assert response.status_code == 200, (method, url, response.text)
        else:
            assert response.status_code == 403, (method, url)
            assert response.json()["error"]["details"] == {"required": scope}
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Audience)) == 1


def test_each_route_needs_its_own_domain_scope(
    client: ApiClient, db: Session, org: Organization, targets: tuple[str, str]
) -> None:
    for method, url, body, scope in _routes(*targets):
        resource = scope.split(":")[1]
        other = "contacts" if resource == "audiences" else "audiences"
        wrong = auth(make_key(db, org, f"read:{other},write:{other}"))
        response = client.request(method, url, json=body, headers=wrong)
        assert response.status_code == 403, (method, url)


def test_write_implies_read_and_all_routes_work_with_write_scopes(
    client: ApiClient, db: Session, org: Organization, targets: tuple[str, str]
) -> None:
    writer = auth(make_key(db, org, "write:audiences,write:contacts"))
    for method, url, body, _ in _routes(*targets):
        response = client.request(method, url, json=body, headers=writer)
        assert response.status_code in (200, 201), (method, url, response.text)


def test_scope_parsing_and_implication() -> None:
    assert parse_scopes("all") >= {"read:audit", "write:contacts"}
    assert parse_scopes("read:audiences, write:contacts") == {"read:audiences", "write:contacts"}
    with pytest.raises(BadRequest):
        parse_scopes("read:everything")
    with pytest.raises(BadRequest):
        parse_scopes("")
    with pytest.raises(BadRequest, match="'all' stands alone"):
        parse_scopes("all,read:audiences")
    principal = Principal("org_x", "api_key", "key_x", frozenset({"write:audiences"}))
    assert principal.has_scope("read:audiences")
    assert not principal.has_scope("read:contacts")
    assert not Principal("org_x", "api_key", None, frozenset({"read:x"})).has_scope("write:x")


def test_keys_are_stored_hashed(db: Session, org: Organization) -> None:
    secret = make_key(db, org)
    stored = db.scalars(select(ApiKey)).one()
    assert secret not in (stored.key_hash, stored.prefix) and secret.startswith(stored.prefix)
    principal = authenticate_api_key(db, secret)
    assert principal is not None and principal.org_id == org.id
    assert authenticate_api_key(db, secret + "x") is None
