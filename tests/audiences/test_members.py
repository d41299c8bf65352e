"""Audience membership: add, remove (DELETE with a body and POST /remove), list, available, counts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.campaigns.factories import add_bulk_members
from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.audiences import service
from tidings.auth import Principal
from tidings.db import bulk_insert, session_scope
from tidings.ids import new_id
from tidings.models import Audience, AudienceMember, AuditEvent, Contact, Organization
from tidings.timeutil import utcnow


@pytest.fixture
def org(db: Session) -> Organization:
    return make_org(db)


@pytest.fixture
def headers(db: Session, org: Organization) -> dict[str, str]:
    return auth(make_key(db, org))


def _contacts(db: Session, org: Organization, n: int, prefix: str = "c") -> list[str]:
    return [
        make_contact(db, org, email=f"{prefix}{i}@example.com", name=f"N{i}").id for i in range(n)
    ]


def _fresh(db: Session) -> None:
    """End the read transaction (SQLite would keep showing its snapshot) and forget loaded rows."""
    db.rollback()
    db.expire_all()


def _members(db: Session, audience_id: str) -> set[str]:
    _fresh(db)
    stmt = select(AudienceMember.contact_id).where(AudienceMember.audience_id == audience_id)
    return set(db.scalars(stmt))


def _count(db: Session, audience_id: str) -> int:
    _fresh(db)
    audience = db.get(Audience, audience_id)
    assert audience is not None
    return audience.contact_count


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_add_returns_the_audience_with_added(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization, prefix: str
) -> None:
    ids = _contacts(db, org, 3)
    audience = make_audience(db, org)
    response = client.post(
        f"{prefix}/audiences/{audience.id}/contacts", headers=headers, json={"contactIds": ids}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == audience.id and body["contactCount"] == 3 and body["added"] == 3
    assert "slug" in body and "organizationId" in body
    assert _members(db, audience.id) == set(ids)
    assert _count(db, audience.id) == 3


def test_re_adding_is_a_no_op(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    ids = _contacts(db, org, 3)
    audience = make_audience(db, org)
    url = f"/v1/audiences/{audience.id}/contacts"
    client.post(url, headers=headers, json={"contactIds": ids[:2]})
    again = client.post(url, headers=headers, json={"contactIds": [*ids, ids[0], ids[2]]}).json()
    assert again["added"] == 1 and again["contactCount"] == 3
    same = client.post(url, headers=headers, json={"contactIds": ids}).json()
    assert same["added"] == 0 and same["contactCount"] == 3
    assert _count(db, audience.id) == 3


def test_unknown_or_foreign_ids_are_a_404_that_adds_nothing(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    mine = _contacts(db, org, 2)
    other_org = make_org(db, "Other")
    foreign = make_contact(db, other_org, email="f@example.com").id
    audience = make_audience(db, org)
    response = client.post(
        f"/v1/audiences/{audience.id}/contacts",
        headers=headers,
        json={"contactIds": [*mine, "con_missing", foreign]},
    )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["details"] == {"contactIds": ["con_missing", foreign], "count": 2}
    assert _members(db, audience.id) == set()
    assert _count(db, audience.id) == 0
    # Ten thousand made-up ids: the first hundred are named, and counted all.
    made_up = [f"con_x{i}" for i in range(10_000)]
    response = client.post(
        f"/v1/audiences/{audience.id}/contacts", headers=headers, json={"contactIds": made_up}
    )
    assert response.status_code == 404
    assert response.json()["error"]["details"] == {"contactIds": made_up[:100], "count": 10_000}
    assert len(response.content) < 5_000


def test_contact_ids_must_be_a_non_empty_bounded_list(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    audience = make_audience(db, org)
    url = f"/v1/audiences/{audience.id}/contacts"
    for body in ({"contactIds": []}, {}, {"contactIds": "con_x"}, {"contactIds": [1, {}]}):
        assert client.post(url, headers=headers, json=body).status_code == 400, body
    too_many = client.post(url, headers=headers, json={"contactIds": ["con_x"] * 10_001})
    assert too_many.status_code == 400
    assert "10,000" in too_many.json()["error"]["message"]
    assert client.post(f"{url}/remove", headers=headers, json={"contactIds": []}).status_code == 400
    empty_delete = client.request("DELETE", url, headers=headers, json={"contactIds": []})
    assert empty_delete.status_code == 400
    no_body = client.delete(url, headers=headers)
    assert no_body.status_code == 400
    assert no_body.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("how", ["delete", "post"])
def test_remove_with_delete_body_or_post(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization, how: str
) -> None:
    ids = _contacts(db, org, 3)
    contacts = [db.get(Contact, i) for i in ids]
    audience = make_audience(db, org, members=[c for c in contacts if c is not None])
    url = f"/v1/audiences/{audience.id}/contacts"
    body = {"contactIds": [ids[0], ids[1], "con_not_a_member"]}
    if how == "delete":
        response = client.request("DELETE", url, headers=headers, json=body)
    else:
        response = client.post(f"{url}/remove", headers=headers, json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["removed"] == 2 and result["contactCount"] == 1 and result["id"] == audience.id
    assert _members(db, audience.id) == {ids[2]}
    again = client.post(f"{url}/remove", headers=headers, json={"contactIds": ids[:2]}).json()
    assert again["removed"] == 0 and again["contactCount"] == 1
    # Removing never deletes the contact itself.
    assert db.scalar(select(func.count()).select_from(Contact)) == 3


def test_audit_events_for_membership_changes(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    ids = _contacts(db, org, 2)
    audience = make_audience(db, org)
    url = f"/v1/audiences/{audience.id}/contacts"
    client.post(url, headers=headers, json={"contactIds": ids})
    client.post(f"{url}/remove", headers=headers, json={"contactIds": ids[:1]})
    events = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_id == audience.id)
        .order_by(AuditEvent.created_at)
    ).all()
    assert [(e.action, e.data) for e in events] == [
        ("audience.contacts_added", {"requested": 2, "added": 2}),
        ("audience.contacts_removed", {"requested": 1, "removed": 1}),
    ]
    assert all(e.actor_type == "api_key" and e.org_id == org.id for e in events)


def test_list_members_paginates_and_searches(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    members = [
        make_contact(db, org, email="alice@example.com", name="Alice"),
        make_contact(db, org, email="bob@example.com", name="Bob"),
        make_contact(db, org, phone="+14155550123", name="Carol"),
    ]
    make_contact(db, org, email="outsider@example.com", name="Alice Outsider")
    audience = make_audience(db, org, members=members)
    url = f"/v1/audiences/{audience.id}/contacts"
    page = client.get(url, headers=headers, params={"limit": 2}).json()
    assert (page["total"], page["totalPages"], len(page["data"])) == (3, 2, 2)
    assert set(page["data"][0]) >= {"id", "email", "phone", "name", "metadata", "organizationId"}
    everyone = client.get(url, headers=headers).json()["data"]
    assert {c["id"] for c in everyone} == {c.id for c in members}
    found = client.get(url, headers=headers, params={"search": "ALICE"}).json()
    assert [c["name"] for c in found["data"]] == ["Alice"] and found["total"] == 1
    by_phone = client.get(url, headers=headers, params={"search": "5550123"}).json()
    assert [c["name"] for c in by_phone["data"]] == ["Carol"]
    assert client.get(url, headers=headers, params={"limit": 101}).status_code == 400


def test_available_contacts_excludes_members(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    member = make_contact(db, org, email="member@example.com", name="Member")
    free = [make_contact(db, org, email=f"free{i}@example.com", name=f"Free {i}") for i in range(3)]
    make_contact(db, make_org(db, "Other"), email="foreign@example.com", name="Free foreign")
    audience = make_audience(db, org, members=[member])
    url = f"/v1/audiences/{audience.id}/available-contacts"
    body = client.get(url, headers=headers).json()
    assert {c["id"] for c in body["data"]} == {c.id for c in free}
    assert body["total"] == 3
    searched = client.get(url, headers=headers, params={"search": "free 1"}).json()
    assert [c["name"] for c in searched["data"]] == ["Free 1"]
    assert client.get(url, headers=headers, params={"search": "member"}).json()["total"] == 0
    paged = client.get(url, headers=headers, params={"limit": 2, "page": 2}).json()
    assert len(paged["data"]) == 1 and paged["totalPages"] == 2


def test_count_follows_add_remove_and_contact_delete(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    ids = _contacts(db, org, 4)
    audience = make_audience(db, org)
    url = f"/v1/audiences/{audience.id}/contacts"
    client.post(url, headers=headers, json={"contactIds": ids})
    client.request("DELETE", url, headers=headers, json={"contactIds": [ids[0]]})
    client.delete(f"/v1/contacts/{ids[1]}", headers=headers)
    client.delete(f"/v1/contacts/{ids[0]}", headers=headers)  # not a member any more
    assert _count(db, audience.id) == 2
    listed = client.get(f"/v1/audiences/{audience.id}", headers=headers).json()
    assert listed["contactCount"] == 2 == len(_members(db, audience.id))


def _write_lock_first(session: Session) -> None:
    """SQLite has one writer: a transaction that read first cannot upgrade once another has
    written, so concurrent writers there begin IMMEDIATE (PostgreSQL ignores the option)."""
    session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def test_concurrent_adds_and_removes_keep_the_count_exact(db: Session, org: Organization) -> None:
    """Overlapping batches from several threads: the count must equal the membership rows."""
    ids = _contacts(db, org, 60)
    audience = make_audience(db, org)
    actor = Principal(org_id=org.id, actor_type="cli", actor_id=None)
    batches = [ids[i : i + 20] for i in range(0, 60, 10)]  # each contact in two batches

    def add(batch: list[str]) -> None:
        with session_scope() as session:
            _write_lock_first(session)
            service.add_contacts(session, actor, audience.id, batch)

    def remove(batch: list[str]) -> None:
        with session_scope() as session:
            _write_lock_first(session)
            service.remove_contacts(session, actor, audience.id, batch)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(add, batches))
    assert _count(db, audience.id) == 60 == len(_members(db, audience.id))
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(remove, batches[::2]))
    remaining = _members(db, audience.id)
    assert _count(db, audience.id) == len(remaining) == 0


def test_concurrent_requests_all_succeed_and_keep_the_count_exact(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    """Through HTTP: on SQLite, writing requests must wait for the one write lock, not fail."""
    ids = _contacts(db, org, 40)
    audience = make_audience(db, org)
    url = f"/v1/audiences/{audience.id}/contacts"

    def call(i: int) -> int:
        batch = ids[(i * 7) % 40 : (i * 7) % 40 + 10]
        path = f"{url}/remove" if i % 3 == 2 else url
        return client.post(path, headers=headers, json={"contactIds": batch}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(call, range(48)))
    assert codes == [200] * 48
    assert _count(db, audience.id) == len(_members(db, audience.id))


def test_add_members_takes_an_import_sized_batch_in_one_statement(
    db: Session, org: Organization
) -> None:
    """The uncapped helper a CSV import uses: 10,000 ids at once, foreign ids select nothing."""
    now = utcnow()
    ids = [new_id("con") for _ in range(10_000)]
    columns = ("id", "org_id", "email", "metadata", "created_at", "updated_at")
    rows = ((cid, org.id, f"bulk{n}@example.com", {}, now, now) for n, cid in enumerate(ids))
    bulk_insert(db, Contact.__table__, columns, rows)  # type: ignore[arg-type]
    foreign = make_contact(db, make_org(db, "Other"), email="f@example.com").id
    audience = make_audience(db, org)
    assert service.add_members(db, audience, [*ids, foreign]) == 10_000
    assert service.add_members(db, audience, ids[:10]) == 0
    db.commit()
    assert _count(db, audience.id) == 10_000 == len(_members(db, audience.id))


def test_ten_thousand_contacts_in_one_call(
    client: ApiClient, headers: dict[str, str], db: Session, org: Organization
) -> None:
    """As many ids as one send or one CSV import reaches, in one call each way."""
    source = make_audience(db, org, "Source")
    ids = add_bulk_members(db, org, source, 10_000)
    target = make_audience(db, org, "Target")
    url = f"/v1/audiences/{target.id}/contacts"
    added = client.post(url, headers=headers, json={"contactIds": ids})
    assert added.status_code == 200, added.text
    assert (added.json()["added"], added.json()["contactCount"]) == (10_000, 10_000)
    removed = client.post(f"{url}/remove", headers=headers, json={"contactIds": ids})
    assert (removed.json()["removed"], removed.json()["contactCount"]) == (10_000, 0)
