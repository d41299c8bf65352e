"""``POST /v1/audiences/:id/send``: counts, scheduling, ramp, variants, limits, idempotency."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.campaigns.factories import add_bulk_members, count, make_suppression, make_template
from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.models import AuditEvent, Campaign, Message, Organization


def _send(client: ApiClient, headers: dict[str, str], audience_id: str, **body: Any) -> Any:
    payload = {"channel": "email", "from": "hello@yourdomain.com", "template": "weekly-newsletter"}
    payload.update(body)
    payload = {k: v for k, v in payload.items() if v is not None}
    return client.post(f"/v1/audiences/{audience_id}/send", json=payload, headers=headers)


def _world(
    db: Session, n: int = 3, timezone: str = "UTC"
) -> tuple[Organization, dict[str, str], Any]:
    org = make_org(db, timezone=timezone)
    members = [make_contact(db, org, email=f"user{i}@example.com", name=f"U{i}") for i in range(n)]
    audience = make_audience(db, org, members=members)
    make_template(db, org)
    return org, auth(make_key(db, org)), audience


def _messages(db: Session, campaign_id: str) -> list[Message]:
    db.commit()  # a fresh snapshot: the app wrote in another session
    stmt = select(Message).where(Message.campaign_id == campaign_id).order_by(Message.contact_id)
    return list(db.scalars(stmt))


def test_send_schedules_one_message_per_member(client: ApiClient, db: Session) -> None:
    org, headers, audience = _world(db)
    before = datetime.now(UTC)
    response = _send(client, headers, audience.id, variables={"cta": "Read more"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "audience_id", "total", "scheduled", "suppressed", "starts_at", "ends_at",
        "campaign_id", "skipped",
    }  # fmt: skip
    assert (body["audience_id"], body["total"], body["scheduled"]) == (audience.id, 3, 3)
    assert (body["suppressed"], body["skipped"]) == (0, 0)
    starts_at = datetime.fromisoformat(body["starts_at"])
    assert before - timedelta(seconds=1) <= starts_at <= datetime.now(UTC)
    assert body["ends_at"] == body["starts_at"]
    messages = _messages(db, body["campaign_id"])
    assert [m.status for m in messages] == ["scheduled"] * 3
    assert {m.to_address for m in messages} == {f"user{i}@example.com" for i in range(3)}
    assert all(m.org_id == org.id and m.channel == "email" for m in messages)
    campaign = db.get(Campaign, body["campaign_id"])
    assert campaign is not None and campaign.status == "scheduled"
    assert campaign.template_subject == "Weekly update for {{ name }}"
    assert campaign.variables == {"cta": "Read more"}
    assert campaign.from_address == "hello@yourdomain.com"


def test_api_v1_prefix_and_template_by_id(client: ApiClient, db: Session) -> None:
    org, headers, audience = _world(db)
    template = make_template(db, org, slug="other")
    response = client.post(
        f"/api/v1/audiences/{audience.id}/send",
        json={"channel": "email", "from": "Team <hello@yourdomain.com>", "template": template.id},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    campaign = db.get(Campaign, response.json()["campaign_id"])
    assert campaign is not None
    assert (campaign.template_id, campaign.from_address) == (
        template.id,
        "Team <hello@yourdomain.com>",
    )


def test_suppressed_and_address_less_members_are_counted(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    ok = [make_contact(db, org, email=f"ok{i}@example.com") for i in range(2)]
    blocked = make_contact(db, org, email="blocked@example.com", phone="+14155550100")
    phone_only = make_contact(db, org, phone="+14155550101")
    audience = make_audience(db, org, members=[*ok, blocked, phone_only])
    make_template(db, org)
    make_template(db, org, slug="sms-note", channel="sms", text="Hi {{ name }}")
    # Listed through the API with another spelling: normalised to the contact's address.
    added = client.post(
        "/v1/suppressions", json={"address": "blocked@EXAMPLE.com"}, headers=headers
    )
    assert added.status_code == 201
    other_org = make_org(db, name="Other")
    make_suppression(db, other_org, "ok0@example.com")  # another org's list changes nothing

    body = _send(client, headers, audience.id).json()
    assert (body["total"], body["scheduled"], body["suppressed"], body["skipped"]) == (4, 2, 1, 1)
    assert {m.to_address for m in _messages(db, body["campaign_id"])} == {
        "ok0@example.com",
        "ok1@example.com",
    }

    sms = _send(client, headers, audience.id, channel="sms", template="sms-note", **{"from": None})
    assert sms.status_code == 201, sms.text
    body = sms.json()
    assert (body["total"], body["scheduled"], body["suppressed"], body["skipped"]) == (4, 2, 0, 2)
    assert {m.to_address for m in _messages(db, body["campaign_id"])} == {
        "+14155550100",
        "+14155550101",
    }


def test_one_message_per_mailbox(client: ApiClient, db: Session) -> None:
    """Contacts keep an email's local part as written, so three spellings of one address can be
    three members: the first by contact id gets the message, the others are skipped. Spellings
    of a suppressed address are all suppressed."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    spellings = [
        make_contact(db, org, email=email)
        for email in ("Priya.Shah@example.com", "priya.shah@example.com", "PRIYA.SHAH@example.com")
    ]
    other = make_contact(db, org, email="other@example.com")
    blocked = [make_contact(db, org, email=e) for e in ("Dup@example.com", "dup@example.com")]
    make_suppression(db, org, "dup@example.com")
    audience = make_audience(db, org, members=[*spellings, other, *blocked])
    make_template(db, org)

    body = _send(client, headers, audience.id).json()
    assert (body["total"], body["scheduled"], body["suppressed"], body["skipped"]) == (6, 2, 2, 2)
    first = min(spellings, key=lambda contact: contact.id)
    assert {(m.contact_id, m.to_address) for m in _messages(db, body["campaign_id"])} == {
        (first.id, first.email),
        (other.id, "other@example.com"),
    }


def test_suppressed_whatever_the_letters(client: ApiClient, db: Session) -> None:
    """The send matches the suppression list as the worker does (``suppression_key``):
    PostgreSQL's lower() folds İ and a final Σ otherwise, and counted these as scheduled."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    listed = ["ΣΑΣ@example.com", "İPEK@example.com", "ÄNNE@example.com"]
    contacts = [make_contact(db, org, email=email) for email in [*listed, "ok@example.com"]]
    audience = make_audience(db, org, members=contacts)
    make_template(db, org)
    for address in listed:
        added = client.post("/v1/suppressions", json={"address": address}, headers=headers)
        assert added.status_code == 201, added.text

    body = _send(client, headers, audience.id).json()
    assert (body["total"], body["scheduled"], body["suppressed"], body["skipped"]) == (4, 1, 3, 0)
    assert [m.to_address for m in _messages(db, body["campaign_id"])] == ["ok@example.com"]


@pytest.mark.parametrize(
    ("zone", "local", "starts_at", "ends_at"),
    [
        ("America/New_York", "2027-05-01 09:00", "2027-05-01T13:00:00.000Z", "2027-05-01T14:00:00.000Z"),
        ("America/New_York", "2027-01-15 09:00", "2027-01-15T14:00:00.000Z", "2027-01-15T15:00:00.000Z"),
        ("America/New_York", "2027-11-07 01:30", "2027-11-07T05:30:00.000Z", "2027-11-07T06:30:00.000Z"),
        ("Europe/London", "2027-07-01 09:00", "2027-07-01T08:00:00.000Z", "2027-07-01T09:00:00.000Z"),
        ("Europe/London", "2027-10-31 01:30", "2027-10-31T00:30:00.000Z", "2027-10-31T01:30:00.000Z"),
        ("Asia/Kolkata", "2027-05-01 09:00:00", "2027-05-01T03:30:00.000Z", "2027-05-01T04:30:00.000Z"),
    ],
)  # fmt: skip
def test_local_schedule_in_a_zone(
    client: ApiClient, db: Session, zone: str, local: str, starts_at: str, ends_at: str
) -> None:
    _, headers, audience = _world(db)
    response = _send(
        client, headers, audience.id, scheduled_local=local, scheduled_at_tz=zone, ramp_minutes=60
    )
    assert response.status_code == 201, response.text
    assert (response.json()["starts_at"], response.json()["ends_at"]) == (starts_at, ends_at)


def test_zone_defaults_to_the_organization(client: ApiClient, db: Session) -> None:
    _, headers, audience = _world(db, timezone="Asia/Kolkata")
    response = _send(client, headers, audience.id, scheduled_local="2027-05-01 09:00")
    assert response.json()["starts_at"] == "2027-05-01T03:30:00.000Z"
    assert response.json()["ends_at"] == "2027-05-01T03:30:00.000Z"


@pytest.mark.parametrize(
    ("zone", "local"),
    [("America/New_York", "2027-03-14 02:30"), ("Europe/London", "2027-03-28 01:30")],
)
def test_local_time_in_a_dst_gap_is_a_422(
    client: ApiClient, db: Session, zone: str, local: str
) -> None:
    _, headers, audience = _world(db)
    response = _send(client, headers, audience.id, scheduled_local=local, scheduled_at_tz=zone)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "nonexistent_local_time"
    assert count(db, Campaign) == 0


def test_ramp_places_every_message(client: ApiClient, db: Session) -> None:
    _, headers, audience = _world(db, n=7)
    response = _send(
        client, headers, audience.id, ramp_minutes=60, scheduled_local="2027-05-01 09:00",
        scheduled_at_tz="America/New_York",
    )  # fmt: skip
    assert response.status_code == 201
    start = datetime(2027, 5, 1, 13, tzinfo=UTC)
    messages = _messages(db, response.json()["campaign_id"])  # ordered by contact id
    assert [m.scheduled_at for m in messages] == [
        start + timedelta(microseconds=3_600_000_000 * i // 7) for i in range(7)
    ]
    assert response.json()["ends_at"] == "2027-05-01T14:00:00.000Z"


def _expected_letter(contact_id: str, n: int) -> str:
    return "ABCDE"[int.from_bytes(hashlib.sha256(contact_id.encode()).digest()[:8], "big") % n]


def test_subject_variants_follow_the_sha256_rule_on_every_send(
    client: ApiClient, db: Session
) -> None:
    _, headers, audience = _world(db, n=30)
    variants = ["Your weekly update", "Quick update for {{name}}", "Hi {{ name }}"]
    letters_by_send = []
    for _ in range(2):
        response = _send(client, headers, audience.id, subject_variants=variants)
        assert response.status_code == 201, response.text
        messages = _messages(db, response.json()["campaign_id"])
        for message in messages:
            assert message.metadata_ == {"subject_variant": _expected_letter(message.contact_id, 3)}
        letters_by_send.append({m.contact_id: m.metadata_["subject_variant"] for m in messages})
    assert letters_by_send[0] == letters_by_send[1]
    assert set(letters_by_send[0].values()) == {"A", "B", "C"}
    campaign = db.get(Campaign, response.json()["campaign_id"])
    assert campaign is not None and campaign.subject_variants == variants


def test_ten_thousand_recipients_are_accepted_and_one_more_is_refused(
    client: ApiClient, db: Session
) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org, ("write:audiences",)))
    audience = make_audience(db, org)
    make_template(db, org)
    add_bulk_members(db, org, audience, 10_000)
    response = _send(client, headers, audience.id, ramp_minutes=1440)
    assert response.status_code == 201, response.text
    assert response.json()["scheduled"] == 10_000
    assert count(db, Message) == 10_000

    add_bulk_members(db, org, audience, 1)
    response = _send(client, headers, audience.id)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_recipients"
    assert "split" in response.json()["error"]["message"].lower()
    assert (count(db, Campaign), count(db, Message)) == (1, 10_000)


def test_a_suppression_matches_whatever_the_case_of_the_local_part(
    client: ApiClient, db: Session
) -> None:
    """Contacts keep their local part as written; a suppression is lower-cased whole, beyond
    ASCII too (SQLite's own lower() folds ASCII only)."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    elise = make_contact(db, org, email="Élise@example.com")
    audience = make_audience(db, org, members=[elise, make_contact(db, org, email="x@example.com")])
    make_template(db, org)
    make_suppression(db, org, "élise@example.com")

    body = _send(client, headers, audience.id).json()
    assert (body["scheduled"], body["suppressed"]) == (1, 1)
    assert {m.to_address for m in _messages(db, body["campaign_id"])} == {"x@example.com"}


def test_limit_counts_suppressed_recipients(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    audience = make_audience(db, org)
    make_template(db, org)
    ids = add_bulk_members(db, org, audience, 10_001)
    make_suppression(db, org, f"{ids[0]}@example.com")
    response = _send(client, headers, audience.id)
    assert response.status_code == 422
    assert (count(db, Campaign), count(db, Message)) == (0, 0)


def test_idempotent_retry_replays_and_creates_nothing(client: ApiClient, db: Session) -> None:
    _, headers, audience = _world(db)
    keyed = {**headers, "Idempotency-Key": "send-1"}
    first = _send(client, keyed, audience.id)
    second = _send(client, keyed, audience.id)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert (count(db, Campaign), count(db, Message)) == (1, 3)
    other = _send(client, keyed, audience.id, ramp_minutes=5)
    assert other.status_code == 409
    assert (count(db, Campaign), count(db, Message)) == (1, 3)


def test_send_needs_write_audiences(client: ApiClient, db: Session) -> None:
    org, _, audience = _world(db)
    reader = auth(make_key(db, org, ("read:audiences", "write:templates", "write:campaigns")))
    response = _send(client, reader, audience.id)
    assert response.status_code == 403
    assert count(db, Campaign) == 0
    assert _send(client, {}, audience.id).status_code == 401


def test_foreign_audience_and_template_are_404(client: ApiClient, db: Session) -> None:
    _, headers, audience = _world(db)
    other = make_org(db, name="Other")
    foreign_audience = make_audience(db, other, members=[make_contact(db, other, email="x@y.io")])
    foreign_template = make_template(db, other, slug="secret")
    response = _send(client, headers, foreign_audience.id)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    for reference in (foreign_template.id, "secret", "no-such-template"):
        response = _send(client, headers, audience.id, template=reference)
        assert response.status_code == 404, reference
        assert response.json()["error"]["code"] == "not_found"
    assert count(db, Campaign) == 0


def test_audit_event_records_the_send(client: ApiClient, db: Session) -> None:
    _, headers, audience = _world(db)
    body = _send(client, headers, audience.id).json()
    event = db.scalars(select(AuditEvent).where(AuditEvent.action == "audience.sent")).one()
    assert (event.target_type, event.target_id, event.actor_type) == (
        "audience",
        audience.id,
        "api_key",
    )
    assert event.data["campaign_id"] == body["campaign_id"]
    assert (event.data["total"], event.data["scheduled"]) == (3, 3)


def test_empty_audience_makes_a_completed_campaign(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    audience = make_audience(db, org)
    make_template(db, org)
    body = _send(client, headers, audience.id).json()
    assert (body["total"], body["scheduled"]) == (0, 0)
    campaign = db.get(Campaign, body["campaign_id"])
    assert campaign is not None and campaign.status == "completed"


def test_variants_that_need_the_sends_variables_are_accepted(
    client: ApiClient, db: Session
) -> None:
    """A variant valid as Liquid but failing without data (``divided_by: n``) is not refused
    while the send's own ``variables`` supply ``n``."""
    _, headers, audience = _world(db)
    response = _send(
        client,
        headers,
        audience.id,
        subject_variants=["A {{ 100 | divided_by: n }}", "B"],
        variables={"n": 5},
    )
    assert response.status_code == 201, response.text
