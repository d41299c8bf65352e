"""Claiming and fencing, on the store directly: what a worker may take, and what it may write."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from tests.delivery.conftest import fresh
from tests.factories import (
    ApiClient,
    auth,
    make_audience,
    make_campaign,
    make_contact,
    make_key,
    make_org,
)
from tidings.db import get_engine
from tidings.delivery.store import Result, SqlStore
from tidings.models import Campaign, Message, Organization, Suppression
from tidings.timeutil import utcnow


def _people(db: Session, org: object, n: int) -> list:  # type: ignore[type-arg]
    return [make_contact(db, org, email=f"p{i}@example.com") for i in range(n)]  # type: ignore[arg-type]


def _due_campaign(db: Session, n: int) -> tuple[Organization, SqlStore]:
    """An organization with one campaign of ``n`` messages due now, and a store to claim them."""
    org = make_org(db)
    people = _people(db, org, n)
    make_campaign(db, org, make_audience(db, org, members=people), people)
    return org, SqlStore(get_engine())


def test_claim_takes_due_messages_in_order_and_leases_them(db: Session) -> None:
    org = make_org(db)
    people = _people(db, org, 4)
    audience = make_audience(db, org, members=people)
    now = utcnow()
    campaign, messages = make_campaign(
        db, org, audience, people, starts_at=now - timedelta(seconds=30), ramp_seconds=60
    )
    store = SqlStore(get_engine())

    claimed = store.claim(10, lease_seconds=60, now=now)

    # Two of four are due (t-30 s, t-15 s); t+0 s is due too (<= now); t+15 s is not.
    assert [m.id for m in claimed] == [m.id for m in messages[:3]]
    assert all(m.attempt == 1 for m in claimed)
    fresh(db)
    rows = {m.id: m for m in db.scalars(select(Message)).all()}
    for message in messages[:3]:
        row = rows[message.id]
        assert row.status == "sending" and row.attempt == 1
        assert row.lease_expires_at == now + timedelta(seconds=60)
    assert rows[messages[3].id].status == "scheduled"
    assert db.get(Campaign, campaign.id).status == "in_progress"  # type: ignore[union-attr]
    assert store.claim(10, lease_seconds=60, now=now) == []  # leased rows are not taken twice


def test_expired_lease_is_reclaimed_and_live_one_is_not(db: Session) -> None:
    _, store = _due_campaign(db, 1)
    now = utcnow()
    [first] = store.claim(10, lease_seconds=5, now=now)

    assert store.claim(10, lease_seconds=5, now=now + timedelta(seconds=4)) == []
    [again] = store.claim(10, lease_seconds=5, now=now + timedelta(seconds=6))

    assert again.id == first.id and again.attempt == 2


def test_an_outcome_with_a_stale_attempt_is_refused(db: Session) -> None:
    _, store = _due_campaign(db, 1)
    now = utcnow()
    [stale] = store.claim(10, lease_seconds=1, now=now)
    [current] = store.claim(10, lease_seconds=60, now=now + timedelta(seconds=2))

    # The first worker wakes up after its lease expired and reports a failure: refused.
    refused = store.record([Result(stale, "failed", at=now, error="late")], now)
    fresh(db)
    row = db.get(Message, stale.id)
    assert row is not None and row.status == "sending" and row.attempt == 2 and row.error is None

    accepted = store.record(
        [Result(current, "sent", at=now, provider_id="p-1")], now + timedelta(seconds=3)
    )
    fresh(db)
    row = db.get(Message, stale.id)
    assert row is not None and row.status == "sent" and row.provider_id == "p-1"
    # And the stale worker cannot overwrite the recorded result either.
    store.record([Result(stale, "failed", at=now, error="late")], now)
    fresh(db)
    assert db.get(Message, stale.id).status == "sent"  # type: ignore[union-attr]
    assert (refused, accepted) == (0, 1)  # the fence is counted (the worker logs it)


def test_messages_no_longer_scheduled_are_never_claimed(db: Session) -> None:
    org = make_org(db)
    people = _people(db, org, 3)
    audience = make_audience(db, org, members=people)
    _, messages = make_campaign(db, org, audience, people)
    for message, status in zip(messages, ("cancelled", "suppressed", "sent"), strict=True):
        message.status = status
    db.commit()

    assert SqlStore(get_engine()).claim(10, lease_seconds=60, now=utcnow()) == []


def test_a_chunk_of_sent_outcomes_is_fenced_row_by_row(db: Session) -> None:
    """The chunk is one statement (on PostgreSQL an UPDATE joined to arrays): the fence must still
    hold per message, and each message keeps its own sent time and provider id."""
    _, store = _due_campaign(db, 3)
    now = utcnow()
    held = store.claim(10, lease_seconds=60, now=now)
    # Another worker re-claims the first message once its lease has run out (attempt 2).
    fresh(db)
    first = db.get(Message, held[0].id)
    assert first is not None
    first.lease_expires_at = now - timedelta(seconds=1)
    db.commit()
    [taken] = store.claim(10, lease_seconds=60, now=now + timedelta(seconds=1))
    assert (taken.id, taken.attempt) == (held[0].id, 2)

    sent = [
        Result(m, "sent", at=now + timedelta(milliseconds=i), provider_id=f"p-{i}")
        for i, m in enumerate(held)
    ]
    accepted = store.record(sent, now + timedelta(seconds=3))

    assert accepted == 2
    fresh(db)
    rows = {m.id: m for m in db.scalars(select(Message)).all()}
    assert (rows[held[0].id].status, rows[held[0].id].attempt) == ("sending", 2)
    for i, message in enumerate(held[1:], start=1):
        row = rows[message.id]
        assert (row.status, row.provider_id, row.lease_expires_at) == ("sent", f"p-{i}", None)
        assert row.sent_at == now + timedelta(milliseconds=i)


def test_mixed_outcomes_and_a_bounce_land_together(db: Session) -> None:
    """Several kinds of outcome (and the bounce's suppression) are one transaction."""
    org, store = _due_campaign(db, 3)
    now = utcnow()
    sent, retried, bounced = store.claim(10, lease_seconds=60, now=now)

    accepted = store.record(
        [
            Result(sent, "sent", at=now, provider_id="ok"),
            Result(retried, "scheduled", at=now, error="421 busy", retry_at=now),
            Result(bounced, "failed", at=now, error="550 no such user", bounce=True),
        ],
        now,
    )

    assert accepted == 3
    fresh(db)
    statuses = {m.id: m.status for m in db.scalars(select(Message)).all()}
    assert statuses == {sent.id: "sent", retried.id: "scheduled", bounced.id: "failed"}
    suppressed = db.scalars(select(Suppression.address).where(Suppression.org_id == org.id)).all()
    assert list(suppressed) == [bounced.to_address]


def test_a_chunk_whose_second_statement_fails_records_nothing(db: Session) -> None:
    """The outcomes of a chunk land together or not at all: here the retry cannot be written
    (its metadata is not JSON), so the 'sent' written before it in the chunk is undone too and
    both messages stay with the worker's lease."""
    _, store = _due_campaign(db, 2)
    now = utcnow()
    sent, retried = store.claim(10, lease_seconds=60, now=now)

    with pytest.raises((StatementError, TypeError)):
        store.record(
            [
                Result(sent, "sent", at=now, provider_id="ok"),
                Result(retried, "scheduled", at=now, retry_at=now, metadata={"x": {1, 2}}),
            ],
            now,
        )

    fresh(db)
    assert {m.status for m in db.scalars(select(Message)).all()} == {"sending"}


def test_a_batch_in_flight_is_still_recorded_after_its_audience_is_deleted(
    client: ApiClient, db: Session
) -> None:
    """A worker holds a batch while the campaign is cancelled and its audience deleted. The
    messages it then delivers are recorded as sent: the rows outlive the audience. (They were
    deleted with it, and an audit saw 2,000 emails go out that no row remembered.)"""
    org = make_org(db)
    people = _people(db, org, 3)
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(db, org, audience, people)
    store = SqlStore(get_engine())
    claimed = store.claim(10, lease_seconds=60, now=utcnow())
    assert len(claimed) == 3
    headers = auth(make_key(db, org))
    assert client.post(f"/v1/campaigns/{campaign.id}/cancel", headers=headers).status_code == 200
    assert client.delete(f"/v1/audiences/{audience.id}", headers=headers).status_code == 200

    sent = [Result(message, "sent", utcnow(), provider_id="relay-1") for message in claimed]
    assert store.record(sent, utcnow()) == 3
    fresh(db)
    statuses = db.scalars(select(Message.status).where(Message.campaign_id == campaign.id))
    assert sorted(statuses) == ["sent", "sent", "sent"]
