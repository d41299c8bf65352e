"""Contacts API: CRUD, normalisation, uniqueness, search, and deletion keeping audiences right."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import (
    ApiClient,
    auth,
    make_audience,
    make_campaign,
    make_contact,
    make_key,
    make_org,
)
from tidings.models import Audience, AudienceMember, AuditEvent, Contact, Organization

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def org(db: Session) -> Organization:
    return make_org(db)


@pytest.fixture
def headers(db: Session, org: Organization) -> dict[str, str]:
    return auth(make_key(db, org))


def test_create_normalises_and_returns_the_contact_object(
    client: ApiClient, headers: dict[str, str], db: Session
) -> None:
    response = client.post(
        "/v1/contacts",
        headers=headers,
        json={
            "email": "  Alice@EXAMPLE.com ",
            "phone": "+1 (415) 555-0101",
            "name": "Alice",
            "metadata": {"city": "Mumbai", "vip": True, "score": 7, "ratio": 0.5, "x": None},
            "id": "con_mine",
            "organizationId": "org_other",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id",
        "email",
        "phone",
        "name",
        "metadata",
        "organizationId",
        "createdAt",
        "updatedAt",
    }
    assert body["email"] == "Alice@example.com"
    assert body["phone"] == "+14155550101"
    assert body["metadata"] == {"city": "Mumbai", "vip": True, "score": 7, "ratio": 0.5, "x": None}
    assert body["id"].startswith("con_") and body["id"] != "con_mine"
    assert body["organizationId"] != "org_other"
    assert TIMESTAMP.match(body["createdAt"]) and TIMESTAMP.match(body["updatedAt"])
    stored = db.get(Contact, body["id"])
    assert stored is not None and stored.org_id == body["organizationId"]


def test_phone_only_and_email_only_contacts(client: ApiClient, headers: dict[str, str]) -> None:
    assert (
        client.post("/v1/contacts", headers=headers, json={"phone": "+919820012345"}).json()[
            "email"
        ]
        is None
    )
    assert (
        client.post("/v1/contacts", headers=headers, json={"email": "a@b.co"}).json()["phone"]
        is None
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Nobody"}, "email"),
        ({"email": "", "phone": "  "}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"phone": "555-0101"}, "phone"),
        ({"phone": "+1 000"}, "phone"),
    ],
)
def test_bad_addresses_are_a_clear_400(
    client: ApiClient, headers: dict[str, str], db: Session, payload: dict[str, str], field: str
) -> None:
    response = client.post("/v1/contacts", headers=headers, json=payload)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"] or "email or a phone" in error["message"]
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_metadata_is_free_form_json(client: ApiClient, headers: dict[str, str]) -> None:
    """Seed 002: "free-form metadata". Objects and lists nest; numbers, booleans and null keep
    their JSON types through the database and back."""
    metadata = {
        "address": {"city": "Mumbai", "pin": 400001, "geo": [19.07, 72.87]},
        "tags": ["vip", "beta"],
        "vip": True,
        "churned": None,
        "nested": {"a": {"b": {"c": [{"d": "deep"}]}}},
    }
    created = client.post(
        "/v1/contacts", headers=headers, json={"email": "a@b.co", "metadata": metadata}
    )
    assert created.status_code == 201, created.text
    assert created.json()["metadata"] == metadata
    fetched = client.get(f"/v1/contacts/{created.json()['id']}", headers=headers)
    assert fetched.json()["metadata"] == metadata


def _nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"next": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ({"address": {"city": "Mum\u0000bai"}}, "'address.city' must not contain NUL"),
        ({"tags": ["ok", "n\u0000"]}, "'tags[1]' must not contain NUL"),
        ({"a": {"k\u0000": 1}}, "a key of 'a' must not contain NUL"),
        ({"score": float("inf")}, "'score' is not a finite number"),
        (_nested(11), "nested more than 10 levels deep"),
        ({"": 1}, "metadata"),
        ({f"k{i}": i for i in range(101)}, "'metadata': has 101 keys; at most 100"),
    ],
)
def test_metadata_refusals_name_the_value(
    client: ApiClient, headers: dict[str, str], db: Session, metadata: object, says: str
) -> None:
    """What either backend could not store alike is a 400 naming the value; nothing is written."""
    # json.dumps writes NUL as \u0000 and infinity as Infinity, which Python's parser reads.
    body = json.dumps({"email": "a@b.co", "metadata": metadata})
    response = client.post(
        "/v1/contacts", headers={**headers, "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert says in error["message"], error
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_ten_levels_of_metadata_are_accepted(client: ApiClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/v1/contacts", headers=headers, json={"email": "a@b.co", "metadata": _nested(10)}
    )
    assert response.status_code == 201, response.text


def test_duplicate_email_or_phone_is_a_409_naming_the_clash(
    client: ApiClient, headers: dict[str, str]
) -> None:
    first = client.post(
        "/v1/contacts", headers=headers, json={"email": "a@example.com", "phone": "+14155550101"}
    ).json()
    clash = client.post("/v1/contacts", headers=headers, json={"email": "a@EXAMPLE.COM"})
    assert clash.status_code == 409
    assert clash.json()["error"]["details"] == {
        "field": "email",
        "value": "a@example.com",
        "contactId": first["id"],
    }
    clash = client.post("/v1/contacts", headers=headers, json={"phone": "+1 415 555 0101"})
    assert clash.status_code == 409
    assert clash.json()["error"]["details"]["field"] == "phone"


def test_same_address_in_two_organizations_is_fine(client: ApiClient, db: Session) -> None:
    for name in ("A", "B"):
        key = make_key(db, make_org(db, name))
        response = client.post("/v1/contacts", headers=auth(key), json={"email": "x@example.com"})
        assert response.status_code == 201


def test_get_patch_and_delete(client: ApiClient, headers: dict[str, str], db: Session) -> None:
    created = client.post(
        "/v1/contacts", headers=headers, json={"email": "a@example.com", "name": "A"}
    ).json()
    url = f"/v1/contacts/{created['id']}"
    assert client.get(url, headers=headers).json() == created

    patched = client.patch(
        url, headers=headers, json={"phone": "+442079460958", "metadata": {"plan": "pro"}}
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["phone"] == "+442079460958" and body["email"] == "a@example.com"
    assert body["name"] == "A" and body["metadata"] == {"plan": "pro"}
    assert body["updatedAt"] >= created["updatedAt"]
    for same in ({}, {"phone": "+44 20 7946 0958", "name": "A", "metadata": {"plan": "pro"}}):
        assert client.patch(url, headers=headers, json=same).json() == body  # updatedAt stays

    # Clearing the email is fine while a phone remains; clearing both is not.
    assert client.patch(url, headers=headers, json={"email": None}).json()["email"] is None
    both = client.patch(url, headers=headers, json={"phone": None})
    assert both.status_code == 400
    assert client.get(url, headers=headers).json()["phone"] == "+442079460958"

    deleted = client.delete(url, headers=headers)
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert client.get(url, headers=headers).status_code == 404
    events = db.execute(
        select(AuditEvent.action, AuditEvent.data).where(AuditEvent.target_id == created["id"])
    ).all()
    actions = sorted(action for action, _ in events)
    # Created, three accepted PATCHes with fields (not the empty one), deleted.
    assert actions == sorted(["contact.created", *["contact.updated"] * 3, "contact.deleted"])
    # Fields by name; no address in any event (read:audit does not imply read:contacts).
    updates = [data for action, data in events if action == "contact.updated"]
    assert {"fields": ["email"]} in updates and {"fields": ["metadata", "phone"]} in updates
    assert all(
        "example.com" not in str(data) and "2079460958" not in str(data) for _, data in events
    )


def test_patch_into_another_contacts_address_is_a_409(
    client: ApiClient, headers: dict[str, str]
) -> None:
    client.post("/v1/contacts", headers=headers, json={"email": "taken@example.com"})
    other = client.post("/v1/contacts", headers=headers, json={"email": "b@example.com"}).json()
    response = client.patch(
        f"/v1/contacts/{other['id']}", headers=headers, json={"email": "taken@example.com"}
    )
    assert response.status_code == 409
    # Sending its own unchanged address is not a clash with itself.
    same = client.patch(
        f"/v1/contacts/{other['id']}", headers=headers, json={"email": "b@example.com"}
    )
    assert same.status_code == 200


def test_unknown_contact_is_a_404(client: ApiClient, headers: dict[str, str]) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, "/v1/contacts/con_nope", headers=headers, json={})
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "not_found"


def _names(client: ApiClient, headers: dict[str, str], term: str) -> set[str]:
    """The names of the organization's contacts that ``term`` finds."""
    page = client.get("/v1/contacts", headers=headers, params={"search": term}).json()
    return {c["name"] for c in page["data"]}


def test_search_matches_name_email_and_phone_case_insensitively(
    client: ApiClient, headers: dict[str, str]
) -> None:
    for payload in (
        {"email": "alice@example.com", "name": "Alice Martin"},
        {"email": "bob@sample.org", "name": "Bob"},
        {"phone": "+14155550199", "name": "Carol 100%"},
    ):
        assert client.post("/v1/contacts", headers=headers, json=payload).status_code == 201

    assert _names(client, headers, "MARTIN") == {"Alice Martin"}
    assert _names(client, headers, "SAMPLE.ORG") == {"Bob"}
    assert _names(client, headers, "555019") == {"Carol 100%"}
    assert _names(client, headers, "100%") == {"Carol 100%"}
    assert _names(client, headers, "%") == {"Carol 100%"}
    assert _names(client, headers, "_") == set()
    assert len(_names(client, headers, "")) == 3


def test_a_phone_is_found_as_people_write_it(
    client: ApiClient, headers: dict[str, str], db: Session
) -> None:
    """Phones are stored in E.164; a term typed with spaces, brackets, dashes or dots is
    searched by its digits (and leading +), in the organization's and an audience's lists."""
    for payload in (
        {"phone": "+14155550123", "name": "Dana"},
        {"phone": "+442079460958", "name": "Eli"},
        {"email": "room-415@example.com", "name": "Flat 415 555"},
    ):
        assert client.post("/v1/contacts", headers=headers, json=payload).status_code == 201
    for term in ("(415) 555-0123", "+1 415 555 0123", "415.555.0123", "+1-415-555-0123"):
        assert _names(client, headers, term) == {"Dana"}, term
    assert _names(client, headers, "+44 20 7946 0958") == {"Eli"}
    # Dialled from inside the country, or with an international prefix: without the zeros.
    for term in ("020 7946 0958", "02079460958", "00 44 20 7946 0958", "0044-20-7946-0958"):
        assert _names(client, headers, term) == {"Eli"}, term
    assert _names(client, headers, "0958") == {"Eli"}  # a number's end keeps its zero
    assert _names(client, headers, "0 0958") == set()
    assert _names(client, headers, "415 555") == {"Dana", "Flat 415 555"}  # digits or as typed
    assert _names(client, headers, "415-555") == {"Dana"}
    assert _names(client, headers, "(1)") == set()  # fewer than three digits: as typed
    audience = client.post("/v1/audiences", headers=headers, json={"name": "Calls"}).json()
    ids = [c["id"] for c in client.get("/v1/contacts", headers=headers).json()["data"]]
    client.post(
        f"/v1/audiences/{audience['id']}/contacts", headers=headers, json={"contactIds": ids}
    )
    members = client.get(
        f"/v1/audiences/{audience['id']}/contacts",
        headers=headers,
        params={"search": "(415) 555-0123"},
    ).json()
    assert [c["name"] for c in members["data"]] == ["Dana"]


def test_names_and_terms_are_composed(client: ApiClient, headers: dict[str, str]) -> None:
    """``José`` typed on macOS arrives decomposed (``e`` + U+0301): stored composed (NFC), as
    emails are, and found by either spelling of the term."""
    composed, decomposed = "José Núñez", "Jose\u0301 Nu\u0301n\u0303ez"
    created = client.post(
        "/v1/contacts", headers=headers, json={"email": "jn@example.com", "name": decomposed}
    )
    assert created.status_code == 201 and created.json()["name"] == composed
    contact_id = created.json()["id"]
    for term in (composed, decomposed, "JOSE\u0301", "núñ"):
        assert _names(client, headers, term) == {composed}, ascii(term)
    patched = client.patch(
        f"/v1/contacts/{contact_id}", headers=headers, json={"name": "Zoe\u0308"}
    )
    assert patched.json()["name"] == "Zoë"
    # Composing can lengthen: 100 Hebrew presentation forms are 300 characters composed.
    long = client.post(
        "/v1/contacts", headers=headers, json={"email": "he@example.com", "name": "\ufb2c" * 100}
    )
    assert long.status_code == 400 and "composed" in long.json()["error"]["message"]


def test_search_folds_case_beyond_ascii(client: ApiClient, headers: dict[str, str]) -> None:
    """SQLite's own lower() folds ASCII only; both backends match "RÉNA" to "Réna"."""
    for payload in (
        {"email": "Élise@example.com", "name": "Réna Ødegård"},
        {"email": "ivan@example.com", "name": "ИВАН Петров"},
    ):
        assert client.post("/v1/contacts", headers=headers, json=payload).status_code == 201

    assert (
        _names(client, headers, "RÉNA")
        == _names(client, headers, "réna")
        == _names(client, headers, "ødegÅrd")
        == {"Réna Ødegård"}
    )
    assert _names(client, headers, "élise@") == {"Réna Ødegård"}
    assert _names(client, headers, "иван") == _names(client, headers, "ПЕТРОВ") == {"ИВАН Петров"}


def test_search_never_matches_across_two_fields(client: ApiClient, headers: dict[str, str]) -> None:
    """Name, email and phone are searched as one text joined by a newline; a term may only match
    inside one of them, also when the term itself holds a newline (then matched field by field).
    """
    payload = {"email": "bob@example.com", "phone": "+14155550123", "name": "Ann"}
    assert client.post("/v1/contacts", headers=headers, json=payload).status_code == 201
    multiline = {"email": "x@example.com", "name": "Line one\nLine two"}
    assert client.post("/v1/contacts", headers=headers, json=multiline).status_code == 201

    def names(term: str) -> list[str]:
        page = client.get("/v1/contacts", headers=headers, params={"search": term}).json()
        return [c["name"] for c in page["data"]]

    assert names("ann") == ["Ann"]
    for across in ("Ann\nbob", "annbob", "Ann bob", ".com\n+1415", "com+1415"):
        assert names(across) == [], across
    assert names("one\nLine") == ["Line one\nLine two"]


def test_list_is_newest_first_and_paginated(client: ApiClient, headers: dict[str, str]) -> None:
    ids = [
        client.post("/v1/contacts", headers=headers, json={"email": f"c{i}@example.com"}).json()[
            "id"
        ]
        for i in range(3)
    ]
    page = client.get("/v1/contacts", headers=headers, params={"limit": 2}).json()
    assert page["total"] == 3 and page["totalPages"] == 2 and page["limit"] == 2
    second = client.get("/v1/contacts", headers=headers, params={"limit": 2, "page": 2}).json()
    listed = [c["id"] for c in page["data"] + second["data"]]
    assert sorted(listed) == sorted(ids) and len(set(listed)) == 3
    assert listed[0] == ids[-1]


def test_search_pages_carry_the_total_of_matches(
    client: ApiClient, headers: dict[str, str]
) -> None:
    """The total of a search counts its matches on every page; past the last page it is still
    the true total with no data, and a search that matches nothing totals 0."""
    for i in range(5):
        payload = {"email": f"m{i}@example.com", "name": f"Match {i}"}
        assert client.post("/v1/contacts", headers=headers, json=payload).status_code == 201
    other = {"email": "z@example.com", "name": "Other"}
    assert client.post("/v1/contacts", headers=headers, json=other).status_code == 201

    def page(number: int, term: str = "match") -> dict[str, object]:
        params = {"search": term, "limit": 2, "page": number}
        response = client.get("/v1/contacts", headers=headers, params=params)
        assert response.status_code == 200
        return dict(response.json())

    first, last, past = page(1), page(3), page(4)
    assert (first["total"], first["totalPages"], len(first["data"])) == (5, 3, 2)  # type: ignore[arg-type]
    assert (last["total"], len(last["data"])) == (5, 1)  # type: ignore[arg-type]
    assert (past["total"], past["data"]) == (5, [])
    assert (page(1, "nobody")["total"], page(1, "nobody")["data"]) == (0, [])
    assert page(10**17)["data"] == []


def test_search_is_newest_first_and_every_page_carries_the_total(
    client: ApiClient, headers: dict[str, str]
) -> None:
    """A page and its total come from one statement; the page past the end has no row to carry
    the total, which is then counted on its own. Matches are ordered newest first."""
    ids = []
    for i in range(4):
        payload = {"email": f"even{i}@example.com", "name": f"Even {i}"}
        ids.append(client.post("/v1/contacts", headers=headers, json=payload).json()["id"])
    client.post("/v1/contacts", headers=headers, json={"email": "odd@example.com"})

    def page(number: int) -> dict[str, Any]:
        params = {"search": "EVEN", "limit": 2, "page": number}
        return dict(client.get("/v1/contacts", headers=headers, params=params).json())

    first, second, past = page(1), page(2), page(3)
    assert [p["total"] for p in (first, second, past)] == [4, 4, 4]
    assert [c["id"] for c in first["data"] + second["data"]] == ids[::-1]
    assert past["data"] == [] and second["totalPages"] == 2


def test_deleting_a_contact_cancels_its_scheduled_messages(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    """The messages list and the campaign's counts say at once that a deleted contact gets
    nothing; the other recipients' messages stay scheduled."""
    gone, stays = make_contact(db, org, email="gone@x.io"), make_contact(db, org, email="s@x.io")
    audience = make_audience(db, org, "First", members=[gone, stays])
    campaign, _ = make_campaign(db, org, audience, [gone, stays])
    assert client.delete(f"/v1/contacts/{gone.id}", headers=headers).status_code == 200
    listed = client.get(f"/v1/messages?campaignId={campaign.id}", headers=headers).json()["data"]
    statuses = {m["contactId"]: (m["status"], m["error"]) for m in listed}
    assert statuses == {
        gone.id: ("cancelled", "the contact was deleted"),
        stays.id: ("scheduled", None),
    }
    counts = client.get(f"/v1/campaigns/{campaign.id}", headers=headers).json()["counts"]
    assert counts["cancelled"] == 1 and counts["scheduled"] == 1


def test_deleting_a_contact_updates_each_audience_count(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    gone, stays = make_contact(db, org, email="gone@x.io"), make_contact(db, org, email="s@x.io")
    first = make_audience(db, org, "First", members=[gone, stays])
    second = make_audience(db, org, "Second", members=[gone])
    untouched = make_audience(db, org, "Third", members=[stays])

    gone_id, ids = gone.id, (first.id, second.id, untouched.id)
    assert client.delete(f"/v1/contacts/{gone_id}", headers=headers).status_code == 200
    db.expire_all()
    counts = {a.id: a.contact_count for a in db.scalars(select(Audience))}
    assert counts == dict(zip(ids, (1, 0, 1), strict=True))
    assert gone_id not in db.scalars(select(AudienceMember.contact_id)).all()
    assert db.get(Contact, gone_id) is None


def test_contacts_need_contact_scopes(client: ApiClient, db: Session, org: Organization) -> None:
    audiences_only = auth(make_key(db, org, "read:audiences,write:audiences"))
    reader = auth(make_key(db, org, "read:contacts"))
    assert client.get("/v1/contacts", headers=audiences_only).status_code == 403
    assert client.get("/v1/contacts", headers=reader).status_code == 200
    denied = client.post("/v1/contacts", headers=reader, json={"email": "a@b.co"})
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"


def test_the_api_v1_prefix_serves_contacts_too(client: ApiClient, headers: dict[str, str]) -> None:
    created = client.post("/api/v1/contacts", headers=headers, json={"email": "a@b.co"})
    assert created.status_code == 201
    assert client.get(f"/v1/contacts/{created.json()['id']}", headers=headers).status_code == 200


def test_idempotency_key_replays_the_create(
    client: ApiClient, headers: dict[str, str], db: Session
) -> None:
    retry = {**headers, "Idempotency-Key": "contact-1"}
    first = client.post("/v1/contacts", headers=retry, json={"email": "a@example.com"})
    again = client.post("/v1/contacts", headers=retry, json={"email": "a@example.com"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    db.rollback()
    assert db.scalar(select(func.count()).select_from(Contact)) == 1


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/v1/contacts", {"email": "a@b.co", "name": "a\u0000b"}),
        ("POST", "/v1/contacts", {"email": "a@b.co", "metadata": {"k": "v\u0000"}}),
        ("POST", "/v1/contacts", {"email": "a@b.co", "metadata": {"k\u0000": 1}}),
        ("GET", "/v1/contacts?search=a%00", None),
        ("GET", "/v1/contacts/con_%00", None),
        ("POST", "/v1/audiences", {"name": "a\u0000"}),
        ("GET", "/v1/audiences/aud_%00/contacts", None),
        ("POST", "/v1/audiences/aud_x/contacts", {"contactIds": ["con_\u0000"]}),
        # SQLite cut the pattern at the NUL and listed everything.
        ("GET", "/v1/templates?search=%00", None),
        ("GET", "/v1/suppressions?search=%00", None),
        ("GET", "/v1/audit-events?action=%00", None),
        ("GET", "/v1/audit-events?target_id=a%00", None),
    ],
)
def test_nul_characters_are_a_400_on_both_backends(
    client: ApiClient, headers: dict[str, str], method: str, url: str, body: object
) -> None:
    """PostgreSQL text cannot hold NUL: the API refuses it up front instead of answering 500."""
    response = client.request(method, url, headers=headers, json=body)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["error"]["message"]


def test_field_lengths_are_enforced(client: ApiClient, headers: dict[str, str]) -> None:
    too_long = [
        {"email": "a@b.co", "name": "x" * 201},
        {"email": "a@b.co", "metadata": {"k" * 101: 1}},
        {"email": "a@b.co", "metadata": {f"k{i}": i for i in range(101)}},
        {"email": "x" * 321 + "@b.co"},
    ]
    for body in too_long:
        assert client.post("/v1/contacts", headers=headers, json=body).status_code == 400


def test_unsearched_totals_come_from_the_maintained_counts(
    client: ApiClient, headers: dict[str, str], db: Session
) -> None:
    """GET /v1/contacts and available-contacts report their total without counting: the
    organization's count follows every create, import and delete."""
    ids = [
        client.post("/v1/contacts", headers=headers, json={"email": f"m{i}@example.com"}).json()[
            "id"
        ]
        for i in range(3)
    ]
    audience = client.post("/v1/audiences", headers=headers, json={"name": "Picker"}).json()
    url = f"/v1/audiences/{audience['id']}"
    csv = "email,name\nm0@example.com,Updated\nn1@example.com,New\nn1@example.com,Again\nbad\n"
    imported = client.post(
        f"{url}/import", headers={**headers, "Content-Type": "text/csv"}, content=csv
    )
    assert imported.status_code == 200, imported.text
    assert client.delete(f"/v1/contacts/{ids[1]}", headers=headers).status_code == 200

    def total(path: str) -> int:
        return int(client.get(path, headers=headers).json()["total"])

    in_database = db.scalar(select(func.count()).select_from(Contact))
    assert total("/v1/contacts") == in_database == 3  # m0, m2, n1
    assert total(f"{url}/available-contacts") == 3 - 2  # m2: m0 and n1 are members
    assert total("/v1/contacts?search=example.com") == 3  # a search still counts its matches


def test_a_search_too_long_says_characters(client: ApiClient, headers: dict[str, str]) -> None:
    for path in ("/v1/contacts", f"/v1/audiences/{_audience(client, headers)}/contacts"):
        response = client.get(path, headers=headers, params={"search": "a" * 1000})
        assert response.status_code == 400
        message = response.json()["error"]["message"]
        assert "characters, not 1000" in message and "items" not in message, message


def _audience(client: ApiClient, headers: dict[str, str]) -> str:
    response = client.post("/v1/audiences", headers=headers, json={"name": "Any"})
    return str(response.json()["id"])
