"""Tenancy: another organization's ids are a 404 on every id-taking route, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.models import Audience, AudienceMember, AuditEvent, Contact


@pytest.fixture
def world(db: Session) -> dict[str, Any]:
    """Org A (the caller) and org B (the victim) with one audience and contacts each."""
    a, b = make_org(db, "A"), make_org(db, "B")
    mine = make_contact(db, a, email="mine@example.com")
    theirs = make_contact(db, b, email="theirs@example.com", name="Theirs")
    their_other = make_contact(db, b, email="other@example.com")
    their_audience = make_audience(db, b, "Theirs", members=[theirs])
    return {
        "headers": auth(make_key(db, a)),
        "mine": mine.id,
        "my_audience": make_audience(db, a, "Mine").id,
        "theirs": theirs.id,
        "their_other": their_other.id,
        "their_audience": their_audience.id,
    }


def _snapshot(db: Session) -> tuple[Any, ...]:
    db.rollback()
    db.expire_all()
    audiences = db.execute(
        select(Audience.id, Audience.name, Audience.slug, Audience.contact_count).order_by(
            Audience.id
        )
    ).all()
    contacts = db.execute(
        select(Contact.id, Contact.email, Contact.name).order_by(Contact.id)
    ).all()
    members = db.execute(
        select(AudienceMember.audience_id, AudienceMember.contact_id).order_by(
            AudienceMember.audience_id, AudienceMember.contact_id
        )
    ).all()
    return tuple(audiences), tuple(contacts), tuple(members)


def _calls(w: dict[str, Any]) -> list[tuple[str, str, Any]]:
    aud = f"/v1/audiences/{w['their_audience']}"
    con = f"/v1/contacts/{w['theirs']}"
    ids = {"contactIds": [w["theirs"]]}
    return [
        ("GET", aud, None),
        ("PATCH", aud, {"name": "pwned", "slug": "pwned"}),
        ("DELETE", aud, None),
        ("GET", f"{aud}/contacts", None),
        ("POST", f"{aud}/contacts", {"contactIds": [w["mine"]]}),
        ("DELETE", f"{aud}/contacts", ids),
        ("POST", f"{aud}/contacts/remove", ids),
        ("GET", f"{aud}/available-contacts", None),
        ("GET", con, None),
        ("PATCH", con, {"name": "pwned", "email": "pwned@example.com"}),
        ("DELETE", con, None),
        # Their contact ids, sent to my own audience.
        ("POST", f"/v1/audiences/{w['my_audience']}/contacts", {"contactIds": [w["their_other"]]}),
    ]


@pytest.mark.parametrize("index", range(12))
def test_other_orgs_ids_are_404_and_change_nothing(
    client: ApiClient, db: Session, world: dict[str, Any], index: int
) -> None:
    method, url, body = _calls(world)[index]
    before = _snapshot(db)
    response = client.request(method, url, headers=world["headers"], json=body)
    assert response.status_code == 404, (method, url, response.text)
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "Theirs" not in response.text and "theirs@example.com" not in response.text
    assert _snapshot(db) == before
    assert db.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_my_own_removal_ignores_their_contact_ids(
    client: ApiClient, db: Session, world: dict[str, Any]
) -> None:
    before = _snapshot(db)
    response = client.post(
        f"/v1/audiences/{world['my_audience']}/contacts/remove",
        headers=world["headers"],
        json={"contactIds": [world["theirs"]]},
    )
    assert response.status_code == 200 and response.json()["removed"] == 0
    assert _snapshot(db) == before


def test_lists_only_show_my_organization(
    client: ApiClient, db: Session, world: dict[str, Any]
) -> None:
    headers = world["headers"]
    audiences = client.get("/v1/audiences", headers=headers).json()
    assert [a["id"] for a in audiences["data"]] == [world["my_audience"]]
    contacts = client.get("/v1/contacts", headers=headers).json()
    assert [c["id"] for c in contacts["data"]] == [world["mine"]]
    available = client.get(
        f"/v1/audiences/{world['my_audience']}/available-contacts", headers=headers
    ).json()
    assert [c["id"] for c in available["data"]] == [world["mine"]]
    searched = client.get("/v1/contacts", headers=headers, params={"search": "theirs"}).json()
    assert searched["data"] == []
