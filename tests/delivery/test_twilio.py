"""SMS through a Twilio-compatible HTTP API (a local fake server)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.delivery.conftest import FakeTwilio, drain, fresh, senderless_sms_campaign
from tests.factories import make_audience, make_campaign, make_contact, make_org
from tidings.models import Campaign, Message, Organization, Suppression


def _sms_campaign(db: Session, org: Organization, *phones: str) -> Campaign:
    people = [make_contact(db, org, phone=p, name=f"N{i}") for i, p in enumerate(phones)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(
        db,
        org,
        audience,
        people,
        channel="sms",
        subject=None,
        html=None,
        text="Hi {{ name }}, {{ offer }}",
        variables={"offer": "20% off"},
        from_address="+14155550199",
    )
    return campaign


def _rows(db: Session, campaign: Campaign) -> dict[str, Message]:
    fresh(db)
    rows = db.scalars(select(Message).where(Message.campaign_id == campaign.id))
    return {m.to_address: m for m in rows}


def test_sms_is_posted_to_the_api_with_basic_auth(db: Session, twilio: FakeTwilio) -> None:
    org = make_org(db)
    campaign = _sms_campaign(db, org, "+14155550100", "+14155550101")

    tally = drain()

    assert tally.counts["sent"] == 2
    assert {r.path for r in twilio.requests} == {"/2010-04-01/Accounts/AC123/Messages.json"}
    assert {r.auth for r in twilio.requests} == {("AC123", "secret-token")}
    forms = sorted((r.form for r in twilio.requests), key=lambda f: f["To"])
    assert forms == [
        {"To": "+14155550100", "From": "+14155550199", "Body": "Hi N0, 20% off"},
        {"To": "+14155550101", "From": "+14155550199", "Body": "Hi N1, 20% off"},
    ]
    rows = _rows(db, campaign)
    assert all(m.status == "sent" and (m.provider_id or "").startswith("SM") for m in rows.values())


def test_client_error_fails_and_server_error_retries(db: Session, twilio: FakeTwilio) -> None:
    org = make_org(db)
    campaign = _sms_campaign(db, org, "+14155550100")
    twilio.replies.append((400, {"code": 21211, "message": "The 'To' number is not valid."}))

    drain()

    [row] = _rows(db, campaign).values()
    assert row.status == "failed" and "not valid" in (row.error or "")

    # 401/403 are the account's credentials: a setup problem, retried like SMTP's 535.
    phones = ("+14155550102", "+14155550103", "+14155550104", "+14155550105")
    for status, phone in zip((429, 503, 401, 403), phones, strict=True):
        other = _sms_campaign(db, org, phone)
        twilio.replies.append((status, {"message": "try later"}))
        drain()
        [row] = _rows(db, other).values()
        assert row.status == "scheduled" and str(status) in (row.error or "")


def test_the_api_is_never_sent_an_sms_without_a_sender(db: Session, twilio: FakeTwilio) -> None:
    """A send refuses this while the API is configured; a campaign scheduled before the server
    switched from an outbox to the API still fails cleanly, naming the fix."""
    campaign = senderless_sms_campaign(db)

    drain()

    [message] = _rows(db, campaign).values()
    assert message.status == "failed" and "TIDINGS_SMS_FROM" in (message.error or "")
    assert twilio.requests == []


def test_the_worker_log_says_why_messages_failed(
    db: Session, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    org = make_org(db)
    _sms_campaign(db, org, "+14155550100")
    twilio.replies.append((401, {"message": "Authenticate"}))

    with caplog.at_level(logging.WARNING, logger="tidings.worker"):
        drain()

    problems = [r.getMessage() for r in caplog.records if "batch problems" in r.getMessage()]
    assert problems and "SMS API 401: Authenticate (x1)" in problems[0], caplog.text


def test_an_accepted_sms_is_never_sent_again(db: Session, twilio: FakeTwilio) -> None:
    """A 2xx is the API's acceptance even when its body names no sid: retrying it sent the
    recipient the same SMS once per attempt."""
    org = make_org(db)
    campaign = _sms_campaign(db, org, "+14155550107")
    twilio.replies.append((200, {"status": "queued"}))

    drain()
    drain()

    assert len(twilio.requests) == 1
    [row] = _rows(db, campaign).values()
    assert (row.status, row.provider_id) == ("sent", None)


def test_a_number_that_opted_out_is_suppressed(db: Session, twilio: FakeTwilio) -> None:
    org = make_org(db)
    campaign = _sms_campaign(db, org, "+14155550108")
    twilio.replies.append(
        (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"})
    )

    drain()

    [row] = _rows(db, campaign).values()
    assert row.status == "failed" and "unsubscribed" in (row.error or "")
    reasons = db.scalars(select(Suppression.reason).where(Suppression.address == "+14155550108"))
    assert list(reasons) == ["bounce"]
