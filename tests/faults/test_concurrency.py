"""Concurrency against a live server (real sockets, uvicorn's thread pool): ten clients sending
with one ``Idempotency-Key`` make one campaign; concurrent adds, removes and imports on one
audience leave ``contactCount`` equal to the true member count; an abandoned idempotency claim
does not block its key forever."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from tests.campaigns.factories import make_template
from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.db import get_engine, new_session
from tidings.imports import store as import_store
from tidings.imports.csv import ContactRow
from tidings.imports.store import matching_contacts
from tidings.models import (
    ApiKey,
    Audience,
    AudienceMember,
    Campaign,
    Contact,
    IdempotencyKey,
    Organization,
)
from tidings.timeutil import utcnow


def _together(n: int, action: Callable[[int], Any]) -> list[Any]:
    """Runs ``action(i)`` in ``n`` threads released at the same instant."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action(i)
        except Exception as exc:  # reported in the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_ten_clients_one_idempotency_key_make_one_campaign(live_server: str, db: Session) -> None:
    org = make_org(db)
    headers = {**auth(make_key(db, org)), "Idempotency-Key": "send-once"}
    template = make_template(db, org)
    members = [make_contact(db, org, email=f"m{i}@example.com") for i in range(20)]
    audience = make_audience(db, org, members=members)
    body = {"from": "a@example.com", "template": template.slug}

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server, timeout=60) as http:
            return http.post(f"/v1/audiences/{audience.id}/send", headers=headers, json=body)

    responses = _together(10, send)
    assert all(isinstance(r, httpx.Response) for r in responses), responses
    statuses = sorted(r.status_code for r in responses)
    assert all(s in (200, 201, 409, 503) for s in statuses), statuses
    done = [r for r in responses if r.status_code in (200, 201)]
    assert done, statuses
    assert len({r.json()["campaign_id"] for r in done}) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_key_in_progress"
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Campaign)) == 1
    # Once the first has finished, a retry replays it.
    again = send(0)
    assert again.status_code in (200, 201)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["campaign_id"] == done[0].json()["campaign_id"]


def test_concurrent_membership_changes_keep_the_count_true(
    live_server: str, db: Session, backend: str
) -> None:
    """On PostgreSQL every change succeeds: all of them lock the audience row first, so none
    deadlocks (adds and imports used to, answering 503). SQLite may answer 503 (busy) instead."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    contacts = [make_contact(db, org, email=f"c{i}@example.com").id for i in range(30)]
    audience = make_audience(db, org)
    rng = random.Random(3)
    plans = [
        (rng.choice(["add", "remove", "import"]), rng.sample(range(30), rng.randint(1, 12)))
        for _ in range(24)
    ]

    def act(i: int) -> int:
        kind, picks = plans[i]
        ids = [contacts[p] for p in picks]
        with httpx.Client(base_url=live_server, timeout=60) as http:
            url = f"/v1/audiences/{audience.id}"
            if kind == "add":
                r = http.post(f"{url}/contacts", headers=headers, json={"contactIds": ids})
            elif kind == "remove":
                r = http.post(f"{url}/contacts/remove", headers=headers, json={"contactIds": ids})
            else:
                csv = "email\n" + "".join(f"c{p}@example.com\n" for p in picks)
                r = http.post(
                    f"{url}/import", headers={**headers, "Content-Type": "text/csv"}, content=csv
                )
            return r.status_code

    for _ in range(2):
        statuses = _together(len(plans), act)
        allowed = (200,) if backend == "postgres" else (200, 503)
        assert all(s in allowed for s in statuses), statuses
        db.expire_all()
        true_count = db.scalar(
            select(func.count())
            .select_from(AudienceMember)
            .where(AudienceMember.audience_id == audience.id)
        )
        stored = db.scalar(select(Audience.contact_count).where(Audience.id == audience.id))
        assert stored == true_count


def test_an_abandoned_claim_is_reclaimed(client: ApiClient, db: Session) -> None:
    """A request that died before its answer was recorded (process killed, database gone) leaves
    its claim "in progress"; after ABANDONED_AFTER the key works again instead of 409 for days."""
    org = make_org(db)
    secret = make_key(db, org)
    key_id = db.scalars(select(ApiKey.id).where(ApiKey.org_id == org.id)).one()
    owner = f"key:{key_id}"
    for key, age in (("fresh", 5), ("stale", 11)):
        db.add(
            IdempotencyKey(
                owner=owner,
                key=key,
                request_hash="died",
                created_at=utcnow() - timedelta(minutes=age),
            )
        )
    db.commit()
    body = {"name": "Retried"}
    fresh = client.post(
        "/v1/audiences", headers={**auth(secret), "Idempotency-Key": "fresh"}, json=body
    )
    assert fresh.status_code == 409
    stale = client.post(
        "/v1/audiences", headers={**auth(secret), "Idempotency-Key": "stale"}, json=body
    )
    assert stale.status_code == 201, stale.text


def test_deleting_contacts_while_they_are_added_keeps_the_counts_true(
    live_server: str, db: Session, backend: str
) -> None:
    """Each contact is added to an audience (by id, or by a one-row import) at the same instant
    as it is deleted. The add either finishes first (the delete then removes and counts its
    membership) or finds the contact gone (404; an import makes a new contact instead): never a
    500, and every audience's count stays its true member count."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    audiences = [make_audience(db, org, f"A{i}").id for i in range(3)]
    # SQLite has one writer, so no race to lose; a few pairs check it answers cleanly.
    pairs = 24 if backend == "postgres" else 6
    contacts = [make_contact(db, org, email=f"d{i}@example.com").id for i in range(pairs)]

    def act(i: int) -> tuple[str, int]:
        contact_id, audience_id = contacts[i // 2], audiences[(i // 2) % 3]
        with httpx.Client(base_url=live_server, timeout=60) as http:
            if i % 2:
                return "delete", http.delete(
                    f"/v1/contacts/{contact_id}", headers=headers
                ).status_code
            url = f"/v1/audiences/{audience_id}"
            if (i // 2) % 4 == 3:
                csv = f"email\nd{i // 2}@example.com\n"
                response = http.post(
                    f"{url}/import", headers={**headers, "Content-Type": "text/csv"}, content=csv
                )
                return "import", response.status_code
            response = http.post(
                f"{url}/contacts", headers=headers, json={"contactIds": [contact_id]}
            )
            return "add", response.status_code

    outcomes = _together(2 * len(contacts), act)
    busy = () if backend == "postgres" else (503,)
    allowed = {"delete": (200, *busy), "add": (200, 404, *busy), "import": (200, 409, *busy)}
    assert all(status in allowed[kind] for kind, status in outcomes), outcomes
    db.expire_all()
    for audience_id in audiences:
        true_count = db.scalar(
            select(func.count())
            .select_from(AudienceMember)
            .where(AudienceMember.audience_id == audience_id)
        )
        stored = db.scalar(select(Audience.contact_count).where(Audience.id == audience_id))
        assert stored == true_count, (audience_id, stored, true_count)
    # The organization's count too: imports that raced a delete created contacts anew.
    contacts_now = db.scalar(
        select(func.count()).select_from(Contact).where(Contact.org_id == org.id)
    )
    assert db.scalar(select(Organization.contact_count).where(Organization.id == org.id)) == (
        contacts_now
    )


def test_more_concurrent_writers_than_threads_all_get_through(
    live_server: str, db: Session
) -> None:
    """More writing requests at once than the server has threads (40). On SQLite each held the
    database's one write lock across several thread trips; with every thread taken by a writer
    waiting for that lock, the holder could not finish: ~30 s stalls, then 503s for all. Now a
    process's writers queue on the event loop, and every one succeeds."""
    org = make_org(db)
    headers = auth(make_key(db, org))

    def create(i: int) -> list[int]:
        # Half of them with an Idempotency-Key: its claim and record are turns too.
        with httpx.Client(base_url=live_server, timeout=120) as http:
            return [
                http.post(
                    "/v1/contacts",
                    headers={**headers, **({"Idempotency-Key": f"k{i}-{n}"} if i % 2 else {})},
                    json={"email": f"w{i}-{n}@example.com"},
                ).status_code
                for n in range(3)
            ]

    statuses = _together(60, create)
    assert all(codes == [201, 201, 201] for codes in statuses), statuses
    db.expire_all()
    assert db.scalar(select(Organization.contact_count).where(Organization.id == org.id)) == 180


def test_concurrent_deletes_of_one_contact_count_it_out_once(
    live_server: str, db: Session, backend: str
) -> None:
    """Each contact deleted by three requests at once: one 200, the others 404 (the one that
    waited on the row lock finds it gone), and the organization's count drops once per contact
    (it went negative: every waiting delete answered 200 and counted down again)."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    contacts = [make_contact(db, org, email=f"x{i}@example.com").id for i in range(8)]
    survivor = make_contact(db, org, email="stays@example.com")

    def delete(i: int) -> tuple[str, int]:
        contact_id = contacts[i // 3]
        with httpx.Client(base_url=live_server, timeout=60) as http:
            return contact_id, http.delete(
                f"/v1/contacts/{contact_id}", headers=headers
            ).status_code

    outcomes = _together(3 * len(contacts), delete)
    for contact_id in contacts:
        codes = sorted(code for cid, code in outcomes if cid == contact_id)
        assert codes == [200, 404, 404], (contact_id, codes)
    db.expire_all()
    assert db.scalar(select(Organization.contact_count).where(Organization.id == org.id)) == 1
    assert db.get(Contact, survivor.id) is not None


def test_an_upload_that_stalls_holds_no_one_up(live_server: str, db: Session) -> None:
    """A client sends an import's headers and part of its file, then stops. Its body is read
    before it takes a turn at the database, so other writes go on (on SQLite they waited behind
    it, and got 503s after 30 s)."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    audience = make_audience(db, org)
    host, port = live_server.removeprefix("http://").split(":")
    stalled = socket.create_connection((host, int(port)))
    try:
        stalled.sendall(
            (
                f"POST /v1/audiences/{audience.id}/import HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {headers['Authorization']}\r\nContent-Type: text/csv\r\n"
                "Content-Length: 100000\r\n\r\nemail\na@example.com\n"
            ).encode()
        )
        with httpx.Client(base_url=live_server, timeout=20) as http:
            created = http.post("/v1/contacts", headers=headers, json={"email": "b@example.com"})
        assert created.status_code == 201, created.text
    finally:
        stalled.close()


def _import(base: str, headers: dict[str, str], audience_id: str, csv: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=120) as http:
        return http.post(
            f"/v1/audiences/{audience_id}/import",
            headers={**headers, "Content-Type": "text/csv"},
            content=csv,
        )


def test_imports_of_the_same_new_addresses_into_other_audiences_all_succeed(
    live_server: str, db: Session
) -> None:
    """On PostgreSQL two imports could not see each other's new contacts: both inserted them,
    and the second got a 409 (files in the same order) or a deadlock's 500 (opposite orders).
    Imports of one organization now take turns: the later ones update what the first made."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    audiences = [make_audience(db, org, f"I{i}").id for i in range(4)]
    rows = [f"n{i}@example.com,+1213{2_000_000 + i:07d}" for i in range(2_000)]
    files = ["email,phone\n" + "\n".join(rows[:: 1 if i % 2 else -1]) + "\n" for i in range(4)]

    responses = _together(4, lambda i: _import(live_server, headers, audiences[i], files[i]))

    assert [r.status_code for r in responses] == [200] * 4, [r.text[:200] for r in responses]
    assert sorted(r.json()["created"] for r in responses) == [0, 0, 0, 2_000]
    db.expire_all()
    counts = db.scalars(select(Audience.contact_count).where(Audience.org_id == org.id)).all()
    assert counts == [2_000] * 4
    assert db.scalar(select(Organization.contact_count).where(Organization.id == org.id)) == 2_000


def test_the_contacts_an_import_locks_can_still_join_other_audiences(
    db: Session, backend: str
) -> None:
    """The import's row locks must not block the key-share lock a membership's foreign key
    takes on its contact: with FOR UPDATE they did, and an import and an add of the same
    contacts to another audience deadlocked (PostgreSQL; SQLite has no row locks)."""
    if backend != "postgres":
        pytest.skip("row locks: PostgreSQL")
    org = make_org(db)
    contact = make_contact(db, org, email="locked@example.com")
    elsewhere = make_audience(db, org, "Elsewhere")
    importing = new_session()
    try:
        row = ContactRow(row=2, email="locked@example.com", phone=None, name=None, metadata={})
        assert [c.id for c in matching_contacts(importing, org.id, [row], True)] == [contact.id]
        with get_engine().connect() as other:
            other.execute(text("SET lock_timeout = '2s'"))
            other.execute(
                insert(AudienceMember).values(
                    audience_id=elsewhere.id,
                    contact_id=contact.id,
                    org_id=org.id,
                    created_at=utcnow(),
                )
            )
            other.rollback()
    finally:
        importing.rollback()
        importing.close()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/audiences", {"name": "Race Name"}),
        ("/v1/templates", {"name": "Race Name", "channel": "sms", "text": "Hi {{ name }}"}),
    ],
)
def test_creates_of_one_name_at_once_all_get_a_slug(
    live_server: str, db: Session, path: str, body: dict[str, str]
) -> None:
    """Twelve creates of one name at the same instant: each takes the next free slug. On
    PostgreSQL five of twelve got a 409 "could not pick a free slug" (audiences) or "choose
    another" (templates), for a slug the client never chose."""
    headers = auth(make_key(db, make_org(db)))

    def create(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server, timeout=60) as http:
            return http.post(path, headers=headers, json=body)

    responses = _together(12, create)
    assert [r.status_code for r in responses] == [201] * 12, [r.text for r in responses]
    slugs = sorted(r.json()["slug"] for r in responses)
    assert slugs == sorted(["race-name", *(f"race-name-{n}" for n in range(2, 13))])


def test_an_import_waits_for_the_organizations_last_one_only_so_long(
    client: ApiClient, db: Session, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Imports of one organization take turns (PostgreSQL), but a waiting import holds a
    connection and a writer's turn: past ``IMPORT_WAIT`` it is a 409 to retry, not a queue
    that holds other organizations up."""
    if backend != "postgres":
        pytest.skip("the advisory lock: PostgreSQL")
    org = make_org(db)
    headers = {**auth(make_key(db, org)), "Content-Type": "text/csv", "Idempotency-Key": "imp"}
    audience = make_audience(db, org)
    monkeypatch.setattr(import_store, "IMPORT_WAIT", "300ms")
    url, csv = f"/v1/audiences/{audience.id}/import", "email\na@example.com\n"
    with get_engine().connect() as other:  # another import of the organization, still running
        assert import_store.one_import_at_a_time(Session(bind=other), org.id)
        busy = client.post(url, headers=headers, content=csv)
        other.rollback()
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "import_in_progress"
    # Its turn come, the retry (same Idempotency-Key: a 409 to retry is not kept) imports.
    done = client.post(url, headers=headers, content=csv)
    assert done.status_code == 200 and done.json()["created"] == 1
