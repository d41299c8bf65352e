"""Audiences API (seed 000): the object, CRUD, slugs, deletion rules, pagination, audit."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.ids import new_id
from tidings.models import Audience, AudienceMember, AuditEvent, Campaign, Organization
from tidings.timeutil import utcnow

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
AUDIENCE_FIELDS = {
    "id",
    "name",
    "slug",
    "description",
    "organizationId",
    "contactCount",
    "createdAt",
    "updatedAt",
}


@pytest.fixture
def org(db: Session) -> Organization:
    return make_org(db)


@pytest.fixture
def headers(db: Session, org: Organization) -> dict[str, str]:
    return auth(make_key(db, org))


def _create(client: ApiClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/v1/audiences", headers=headers, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _actions(db: Session, target_id: str) -> list[str]:
    stmt = select(AuditEvent.action).where(AuditEvent.target_id == target_id)
    return list(db.scalars(stmt.order_by(AuditEvent.created_at)))


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_create_returns_the_seed_object(
    client: ApiClient, headers: dict[str, str], org: Organization, db: Session, prefix: str
) -> None:
    response = client.post(
        f"{prefix}/audiences",
        headers=headers,
        json={
            "name": "Mumbai Premium - March 2026",
            "description": "Hindi-speaking premium customers in Mumbai",
            "id": "aud_forced",
            "organizationId": "org_other",
            "contactCount": 250,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == AUDIENCE_FIELDS
    assert body["name"] == "Mumbai Premium - March 2026"
    assert body["description"] == "Hindi-speaking premium customers in Mumbai"
    assert body["slug"] == "mumbai-premium-march-2026"
    assert body["organizationId"] == org.id
    assert body["contactCount"] == 0
    assert body["id"].startswith("aud_") and body["id"] != "aud_forced"
    assert TIMESTAMP.match(body["createdAt"]) and TIMESTAMP.match(body["updatedAt"])
    stored = db.get(Audience, body["id"])
    assert stored is not None and stored.org_id == org.id and stored.contact_count == 0
    assert _actions(db, body["id"]) == ["audience.created"]


def test_description_is_optional_and_name_required(
    client: ApiClient, headers: dict[str, str], db: Session
) -> None:
    assert _create(client, headers, name="Plain")["description"] is None
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": None}, {"name": "x" * 201}):
        response = client.post("/v1/audiences", headers=headers, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"
    assert db.scalar(select(func.count()).select_from(Audience)) == 1


def test_malformed_json_is_a_400(client: ApiClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/v1/audiences",
        headers={**headers, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400


def test_slug_clash_on_create_gets_a_numeric_suffix(
    client: ApiClient, headers: dict[str, str]
) -> None:
    slugs = [_create(client, headers, name="Beta Testers!")["slug"] for _ in range(3)]
    assert slugs == ["beta-testers", "beta-testers-2", "beta-testers-3"]
    assert _create(client, headers, name="Ünïcödé ☃")["slug"] == "unicode"
    assert _create(client, headers, name="☃☃")["slug"] == "audience"


def test_explicit_slug_on_create(client: ApiClient, headers: dict[str, str]) -> None:
    assert _create(client, headers, name="X", slug="my-list")["slug"] == "my-list"
    taken = client.post("/v1/audiences", headers=headers, json={"name": "Y", "slug": "my-list"})
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "slug_taken"
    bad = client.post("/v1/audiences", headers=headers, json={"name": "Y", "slug": "Not A Slug"})
    assert bad.status_code == 400


def test_same_slug_in_two_organizations(client: ApiClient, db: Session) -> None:
    for name in ("A", "B"):
        key = auth(make_key(db, make_org(db, name)))
        assert _create(client, key, name="News")["slug"] == "news"


def test_get_and_patch_any_subset(client: ApiClient, headers: dict[str, str], db: Session) -> None:
    created = _create(client, headers, name="Old", description="notes")
    url = f"/v1/audiences/{created['id']}"
    assert client.get(url, headers=headers).json() == created

    renamed = client.patch(url, headers=headers, json={"name": "New"}).json()
    assert renamed["name"] == "New" and renamed["description"] == "notes"
    assert renamed["slug"] == "old"  # a rename does not move the slug
    assert renamed["updatedAt"] >= created["updatedAt"]

    cleared = client.patch(url, headers=headers, json={"description": None}).json()
    assert cleared["description"] is None and cleared["name"] == "New"

    reslugged = client.patch(url, headers=headers, json={"slug": "fresh"}).json()
    assert reslugged["slug"] == "fresh"
    unchanged = client.patch(url, headers=headers, json={}).json()
    assert unchanged == reslugged  # an empty PATCH changes nothing, not even updatedAt
    same = {"name": "New", "slug": "fresh", "description": None}
    assert client.patch(url, headers=headers, json=same).json() == reslugged  # nor the same values

    forced = client.patch(
        url, headers=headers, json={"contactCount": 99, "organizationId": "org_x", "id": "aud_x"}
    ).json()
    assert forced["contactCount"] == 0 and forced["id"] == created["id"]
    assert forced["organizationId"] == created["organizationId"]
    assert "audience.updated" in _actions(db, str(created["id"]))


def test_patch_errors(client: ApiClient, headers: dict[str, str]) -> None:
    _create(client, headers, name="Taken")
    other = _create(client, headers, name="Other")
    url = f"/v1/audiences/{other['id']}"
    duplicate = client.patch(url, headers=headers, json={"slug": "taken"})
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "slug_taken"
    assert client.patch(url, headers=headers, json={"slug": "other"}).status_code == 200
    assert client.patch(url, headers=headers, json={"name": None}).status_code == 400
    assert client.patch(url, headers=headers, json={"name": ""}).status_code == 400
    assert client.patch(url, headers=headers, json={"slug": "Bad Slug"}).status_code == 400
    assert client.get(url, headers=headers).json()["slug"] == "other"


def test_delete_keeps_contacts(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    contact = make_contact(db, org, email="a@example.com")
    audience = make_audience(db, org, members=[contact])
    audience_id, contact_id = audience.id, contact.id
    response = client.delete(f"/v1/audiences/{audience_id}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert client.get(f"/v1/audiences/{audience_id}", headers=headers).status_code == 404
    assert client.get(f"/v1/contacts/{contact_id}", headers=headers).status_code == 200
    assert db.scalar(select(func.count()).select_from(AudienceMember)) == 0
    assert _actions(db, audience_id) == ["audience.deleted"]


def _campaign(db: Session, org: Organization, audience: Audience, status: str) -> None:
    now = utcnow()
    db.add(
        Campaign(
            id=new_id("cmp"),
            org_id=org.id,
            audience_id=audience.id,
            channel="email",
            status=status,
            starts_at=now,
            ends_at=now,
        )
    )
    db.commit()


@pytest.mark.parametrize("status", ["scheduled", "in_progress"])
def test_delete_with_an_active_campaign_is_a_409(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization, status: str
) -> None:
    audience = make_audience(db, org)
    _campaign(db, org, audience, status)
    response = client.delete(f"/v1/audiences/{audience.id}", headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "audience_in_use"
    assert client.get(f"/v1/audiences/{audience.id}", headers=headers).status_code == 200


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_delete_with_a_finished_campaign_is_allowed(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization, status: str
) -> None:
    audience = make_audience(db, org)
    _campaign(db, org, audience, status)
    assert client.delete(f"/v1/audiences/{audience.id}", headers=headers).status_code == 200


def test_unknown_audience_is_a_404_everywhere(client: ApiClient, headers: dict[str, str]) -> None:
    base = "/v1/audiences/aud_nope"
    calls = [
        ("GET", base, None),
        ("PATCH", base, {"name": "x"}),
        ("DELETE", base, None),
        ("GET", f"{base}/contacts", None),
        ("POST", f"{base}/contacts", {"contactIds": ["con_x"]}),
        ("DELETE", f"{base}/contacts", {"contactIds": ["con_x"]}),
        ("POST", f"{base}/contacts/remove", {"contactIds": ["con_x"]}),
        ("GET", f"{base}/available-contacts", None),
    ]
    for method, url, body in calls:
        response = client.request(method, url, headers=headers, json=body)
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["code"] == "not_found"


# --- pagination --------------------------------------------------------------------------------


def test_list_defaults_and_order(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    ids = [_create(client, headers, name=f"A{i}")["id"] for i in range(3)]
    body = client.get("/v1/audiences", headers=headers).json()
    assert set(body) == {"data", "total", "page", "limit", "totalPages"}
    assert (body["total"], body["page"], body["limit"], body["totalPages"]) == (3, 1, 20, 1)
    assert [a["id"] for a in body["data"]] == list(reversed(ids))
    assert set(body["data"][0]) == AUDIENCE_FIELDS


def test_list_uses_the_maintained_count(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    audience = make_audience(db, org)
    audience.contact_count = 42  # the list reads the column; it never counts members
    db.commit()
    assert client.get("/v1/audiences", headers=headers).json()["data"][0]["contactCount"] == 42


def test_pagination_edges(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    for i in range(5):
        make_audience(db, org, f"A{i}")
    page = client.get("/v1/audiences?page=2&limit=2", headers=headers).json()
    assert (page["total"], page["page"], page["limit"], page["totalPages"]) == (5, 2, 2, 3)
    assert len(page["data"]) == 2
    last = client.get("/v1/audiences?page=3&limit=2", headers=headers).json()
    assert len(last["data"]) == 1
    beyond = client.get("/v1/audiences?page=9&limit=2", headers=headers).json()
    assert beyond["data"] == [] and beyond["total"] == 5 and beyond["page"] == 9
    huge = client.get(f"/v1/audiences?page={10**25}&limit=2", headers=headers)
    assert huge.status_code == 200 and huge.json()["data"] == []  # no OFFSET overflow
    assert client.get("/v1/audiences?limit=100", headers=headers).status_code == 200
    bad = ("page=0", "limit=0", "limit=101", "page=-1", "page=abc")
    # Not whole numbers as written, whatever int() would make of them (1_0 was 10).
    odd = ("limit=1_0", "limit=20.0", "page=%2B1", "page=%202%20", "limit=1%0A", "page=%C2%B2")
    for query in (*bad, *odd):
        response = client.get(f"/v1/audiences?{query}", headers=headers)
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == "validation_error"
    assert "whole number" in client.get("/v1/audiences?limit=1_0", headers=headers).text
    assert client.get("/v1/audiences?page=01&limit=007", headers=headers).json()["limit"] == 7


def test_empty_list(client: ApiClient, headers: dict[str, str]) -> None:
    body = client.get("/v1/audiences", headers=headers).json()
    assert body == {"data": [], "total": 0, "page": 1, "limit": 20, "totalPages": 0}


def test_openapi_describes_the_real_shapes(client: ApiClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/audiences"]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(post["responses"])
    schema = spec["components"]["schemas"]["AudienceOut"]
    assert set(schema["properties"]) >= AUDIENCE_FIELDS
    delete = spec["paths"]["/v1/audiences/{audience_id}"]["delete"]
    assert "409" in delete["responses"]
    assert "requestBody" in spec["paths"]["/v1/audiences/{audience_id}/contacts"]["delete"]


def test_idempotency_key_replays_the_create(
    client: ApiClient, headers: dict[str, str], db: Session
) -> None:
    retry = {**headers, "Idempotency-Key": "create-news-1"}
    first = client.post("/v1/audiences", headers=retry, json={"name": "News"})
    again = client.post("/v1/audiences", headers=retry, json={"name": "News"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    other = client.post("/v1/audiences", headers=retry, json={"name": "Other"})
    assert other.status_code == 409
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Audience)) == 1


def test_a_retry_is_the_same_request_however_it_is_spelt(
    client: ApiClient, headers: dict[str, str], db: Session
) -> None:
    """The same value in other JSON whitespace or key order, under the other mount (/api/v1), or
    with a charset on its Content-Type replays; a different value is still a 409."""
    retry = {**headers, "Idempotency-Key": "create-news-2", "Content-Type": "application/json"}
    first = client.post(
        "/v1/audiences", headers=retry, content=b'{"name":"News","description":"Weekly"}'
    )
    assert first.status_code == 201, first.text
    for path, content_type, body in [
        ("/v1/audiences", "application/json", b'{ "description" : "Weekly",\n "name": "News" }'),
        ("/api/v1/audiences", "application/json", b'{"name":"News","description":"Weekly"}'),
        (
            "/v1/audiences",
            "application/json; charset=utf-8",
            b'{"name":"News","description":"Weekly"}',
        ),
        ("/v1/audiences", None, b'{"name":"News","description":"Weekly"}'),
    ]:
        sent = {k: v for k, v in retry.items() if k != "Content-Type"}
        if content_type is not None:
            sent["Content-Type"] = content_type
        again = client.post(path, headers=sent, content=body)
        assert again.status_code == 201, (path, content_type, again.text)
        assert again.json() == first.json()
        assert again.headers.get("idempotent-replayed") == "true"
    changed = client.post(
        "/v1/audiences", headers=retry, content=b'{"name":"News","description":"Daily"}'
    )
    assert changed.status_code == 409
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Audience)) == 1
