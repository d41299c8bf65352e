"""Tenancy, walked over the whole API: every operation of the OpenAPI document, called by org A with
org B's ids, is a 404 that changes nothing in any table and names nothing of B's.

The operations are classified below; an operation the document has and this file does not know
fails ``test_every_operation_is_classified``, so a new route cannot skip the walk.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.factories import ApiClient, make_user
from tests.security.world import World, build_world, changed_tables, fingerprint
from tidings.auth import create_dashboard_session

Call = tuple[str, str, dict[str, Any] | None]


def _id_routes(m: dict[str, str], t: dict[str, str]) -> dict[tuple[str, str], Call]:
    """Operations addressing one of B's objects; ``m`` are A's ids (used in bodies), ``t`` B's."""
    aud, con, tpl = t["audience_id"], t["contact_id"], t["template_id"]
    return {
        ("get", "/v1/audiences/{audience_id}"): ("GET", f"/audiences/{aud}", None),
        ("patch", "/v1/audiences/{audience_id}"): ("PATCH", f"/audiences/{aud}", {"name": "x"}),
        ("delete", "/v1/audiences/{audience_id}"): ("DELETE", f"/audiences/{aud}", None),
        ("get", "/v1/audiences/{audience_id}/contacts"): (
            "GET",
            f"/audiences/{aud}/contacts",
            None,
        ),
        ("post", "/v1/audiences/{audience_id}/contacts"): (
            "POST",
            f"/audiences/{aud}/contacts",
            {"contactIds": [m["other_contact_id"]]},
        ),
        ("delete", "/v1/audiences/{audience_id}/contacts"): (
            "DELETE",
            f"/audiences/{aud}/contacts",
            {"contactIds": [con]},
        ),
        ("post", "/v1/audiences/{audience_id}/contacts/remove"): (
            "POST",
            f"/audiences/{aud}/contacts/remove",
            {"contactIds": [con]},
        ),
        ("get", "/v1/audiences/{audience_id}/available-contacts"): (
            "GET",
            f"/audiences/{aud}/available-contacts",
            None,
        ),
        ("post", "/v1/audiences/{audience_id}/send"): (
            "POST",
            f"/audiences/{aud}/send",
            {"from": "a@example.com", "template": m["template_slug"]},
        ),
        ("post", "/v1/audiences/{audience_id}/import"): (
            "POST",
            f"/audiences/{aud}/import",
            {"csv": "email,name\nnew@example.com,New\n"},
        ),
        ("get", "/v1/contacts/{contact_id}"): ("GET", f"/contacts/{con}", None),
        ("patch", "/v1/contacts/{contact_id}"): ("PATCH", f"/contacts/{con}", {"name": "x"}),
        ("delete", "/v1/contacts/{contact_id}"): ("DELETE", f"/contacts/{con}", None),
        ("get", "/v1/templates/{template_id}"): ("GET", f"/templates/{tpl}", None),
        ("patch", "/v1/templates/{template_id}"): ("PATCH", f"/templates/{tpl}", {"name": "x"}),
        ("delete", "/v1/templates/{template_id}"): ("DELETE", f"/templates/{tpl}", None),
        ("post", "/v1/templates/{template_id}/preview"): ("POST", f"/templates/{tpl}/preview", {}),
        ("get", "/v1/suppressions/{suppression_id}"): (
            "GET",
            f"/suppressions/{t['suppression_id']}",
            None,
        ),
        ("delete", "/v1/suppressions/{suppression_id}"): (
            "DELETE",
            f"/suppressions/{t['suppression_id']}",
            None,
        ),
        ("delete", "/v1/suppressions"): (
            "DELETE",
            "/suppressions",
            {"address": t["suppression_address"]},
        ),
        ("get", "/v1/campaigns/{campaign_id}"): ("GET", f"/campaigns/{t['campaign_id']}", None),
        ("post", "/v1/campaigns/{campaign_id}/cancel"): (
            "POST",
            f"/campaigns/{t['campaign_id']}/cancel",
            None,
        ),
        ("get", "/v1/messages/{message_id}"): ("GET", f"/messages/{t['message_id']}", None),
    }


def _cross_references(m: dict[str, str], t: dict[str, str]) -> list[Call]:
    """A's own objects, pointed at B's: also a 404, also no change."""
    return [
        (
            "POST",
            f"/audiences/{m['audience_id']}/contacts",
            {"contactIds": [t["other_contact_id"]]},
        ),
        (
            "POST",
            f"/audiences/{m['audience_id']}/send",
            {"from": "a@example.com", "template": t["template_slug"]},
        ),
        (
            "POST",
            f"/audiences/{m['audience_id']}/send",
            {"from": "a@example.com", "template": t["template_id"]},
        ),
        ("POST", f"/templates/{m['template_id']}/preview", {"contactId": t["contact_id"]}),
    ]


def _filtered_lists(t: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """Collection reads filtered by B's ids: an empty page (the filter is just a filter)."""
    return [
        ("/campaigns", {"audienceId": t["audience_id"]}),
        ("/messages", {"campaignId": t["campaign_id"]}),
        ("/messages", {"contactId": t["contact_id"]}),
        ("/audit-events", {"targetId": t["audience_id"]}),
        ("/audiences", {}),
        ("/contacts", {"search": "theirs"}),
        ("/templates", {}),
        ("/suppressions", {"search": "theirs"}),
    ]


# Operations without an object id: creates (see test_mass_assignment) and lists (filtered above).
COLLECTION_OPERATIONS = {
    ("get", "/v1/audiences"),
    ("post", "/v1/audiences"),
    ("get", "/v1/contacts"),
    ("post", "/v1/contacts"),
    ("get", "/v1/templates"),
    ("post", "/v1/templates"),
    ("get", "/v1/suppressions"),
    ("post", "/v1/suppressions"),
    ("get", "/v1/campaigns"),
    ("get", "/v1/messages"),
    ("get", "/v1/audit-events"),
    ("get", "/healthz"),
    ("post", "/api/internal/audiences/{audience_id}/import-csv"),  # test_internal_import_*
}


@pytest.fixture
def world(client: ApiClient, db: Session) -> World:
    return build_world(client, db)


def _their_values(world: World) -> set[str]:
    return {v for k, v in world.theirs.items() if k != "org"} | {"Theirs", world.theirs["org"]}


def _assert_404_unchanged(
    client: ApiClient, db: Session, world: World, prefix: str, call: Call
) -> str | None:
    method, path, body = call
    before = fingerprint(db)
    response = client.request(method, prefix + path, headers=world.headers, json=body)
    changed = changed_tables(before, fingerprint(db))
    sent = path + repr(body)  # echoing what the caller sent reveals nothing
    leaked = [v for v in _their_values(world) if v in response.text and v not in sent]
    if response.status_code != 404 or changed or leaked:
        return f"{method} {prefix}{path}: {response.status_code} changed={changed} leaked={leaked}"
    if not response.json()["error"]["code"].endswith("not_found"):
        return f"{method} {prefix}{path}: envelope {response.text}"
    return None


def test_every_operation_is_classified(app: Any) -> None:
    documented = {(method, path) for path, ops in app.openapi()["paths"].items() for method in ops}
    known = _classified() | COLLECTION_OPERATIONS
    assert documented == known, (
        f"unclassified: {sorted(documented - known)}; stale: {sorted(known - documented)}"
    )


def _classified() -> set[tuple[str, str]]:
    stub = dict.fromkeys(
        (
            "audience_id",
            "contact_id",
            "other_contact_id",
            "template_id",
            "template_slug",
            "suppression_id",
            "suppression_address",
            "campaign_id",
            "message_id",
        ),
        "x",
    )
    return set(_id_routes(stub, stub))


def test_every_id_route_is_404_for_another_orgs_ids(
    client: ApiClient, db: Session, world: World
) -> None:
    calls = [*_id_routes(world.mine, world.theirs).values()]
    calls += _cross_references(world.mine, world.theirs)
    failures = [f for c in calls if (f := _assert_404_unchanged(client, db, world, "/v1", c))]
    assert not failures, "\n".join(failures)


def test_api_v1_mirror_is_just_as_closed(client: ApiClient, db: Session, world: World) -> None:
    calls = list(_id_routes(world.mine, world.theirs).values())
    failures = [f for c in calls if (f := _assert_404_unchanged(client, db, world, "/api/v1", c))]
    assert not failures, "\n".join(failures)


def test_filtered_lists_show_nothing_of_another_org(
    client: ApiClient, db: Session, world: World
) -> None:
    before = fingerprint(db)
    for prefix in ("/v1", "/api/v1"):
        for path, params in _filtered_lists(world.theirs):
            response = client.get(prefix + path, headers=world.headers, params=params)
            assert response.status_code == 200, (path, response.text)
            leaked = [v for v in _their_values(world) if v in response.text]
            assert not leaked, (path, params, leaked)
    assert changed_tables(before, fingerprint(db)) == []


def test_internal_import_by_another_orgs_owner_is_404(
    client: ApiClient, db: Session, world: World
) -> None:
    from tidings.models import Organization

    org_a = db.get(Organization, world.mine["org"])
    assert org_a is not None
    user = make_user(db, org_a, "owner-a@example.com", role="owner")
    token, row = create_dashboard_session(db, user)
    db.commit()
    client.cookies.set("tidings_session", token)
    before = fingerprint(db)
    response = client.post(
        f"/api/internal/audiences/{world.theirs['audience_id']}/import-csv",
        content=b"email\nnew@example.com\n",
        headers={"Content-Type": "text/csv", "X-CSRF-Token": row.csrf_token},
    )
    assert response.status_code == 404, response.text
    assert changed_tables(before, fingerprint(db)) == []


MASS_ASSIGNED = {"organizationId": "ORG", "id": "aud_forged", "contactCount": 9999}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/audiences", {"name": "Forged"}),
        ("/contacts", {"email": "forged@example.com"}),
        ("/templates", {"name": "Forged", "channel": "sms", "text": "hi"}),
        ("/suppressions", {"address": "forged@example.com"}),
    ],
)
def test_mass_assignment_on_create_is_ignored_or_refused(
    client: ApiClient, db: Session, world: World, path: str, body: dict[str, Any]
) -> None:
    forged = {**body, **MASS_ASSIGNED, "organizationId": world.theirs["org"]}
    before = fingerprint(db)
    response = client.post(f"/v1{path}", headers=world.headers, json=forged)
    if response.status_code in (400, 422):
        assert changed_tables(before, fingerprint(db)) == []
        return
    assert response.status_code in (200, 201), response.text
    created = response.json()
    assert created["id"] != "aud_forged"
    assert created.get("organizationId", world.mine["org"]) == world.mine["org"]
    assert created.get("contactCount", 0) == 0
    # It is A's object: B cannot see it, A can.
    assert client.get(f"/v1{path}/{created['id']}", headers=world.their_headers).status_code == 404
    assert client.get(f"/v1{path}/{created['id']}", headers=world.headers).status_code == 200


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("audiences", {"name": "Renamed"}),
        ("contacts", {"name": "Renamed"}),
        ("templates", {"name": "Renamed"}),
    ],
)
def test_mass_assignment_on_update_is_ignored_or_refused(
    client: ApiClient, db: Session, world: World, kind: str, body: dict[str, Any]
) -> None:
    object_id = world.mine[f"{kind[:-1]}_id"]
    forged = {**body, **MASS_ASSIGNED, "organizationId": world.theirs["org"]}
    before = fingerprint(db)
    response = client.patch(f"/v1/{kind}/{object_id}", headers=world.headers, json=forged)
    if response.status_code in (400, 422):
        assert changed_tables(before, fingerprint(db)) == []
        return
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["id"] == object_id
    assert updated.get("organizationId", world.mine["org"]) == world.mine["org"]
    if kind == "audiences":
        assert updated["contactCount"] == 1
    assert client.get(f"/v1/{kind}/{object_id}", headers=world.their_headers).status_code == 404
