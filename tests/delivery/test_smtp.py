"""End to end through a real SMTP server: what arrives, with which headers, and what is stored."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.delivery.conftest import SmtpSink, configure, drain, free_port, fresh
from tests.factories import make_audience, make_campaign, make_contact, make_org
from tidings.delivery.tokens import read_unsubscribe_token
from tidings.models import Campaign, Message, Suppression
from tidings.timeutil import utcnow


def _stored(db: Session, campaign: Campaign) -> dict[str, Message]:
    fresh(db)
    rows = db.scalars(select(Message).where(Message.campaign_id == campaign.id)).all()
    return {m.to_address: m for m in rows}


def test_ramped_campaign_arrives_rendered_with_headers(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    people = [
        make_contact(
            db, org, email=f"p{i}@example.com", name=f"Person {i}", metadata={"city": "Pune"}
        )
        for i in range(4)
    ]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(
        db,
        org,
        audience,
        people,
        subject_variants=["Weekly update", "Quick update for {{ name }}"],
        text="Hi {{ name }} from {{ city }}: {{ cta }}\nUnsubscribe: {{ unsubscribe_url }}",
        html="<p>Hi {{ name }} &mdash; {{ cta }}</p>",
        variables={"cta": "Read more", "city": "Mumbai"},  # the request's variables win
        starts_at=utcnow() - timedelta(seconds=60),
        ramp_seconds=30,
    )

    tally = drain()

    assert tally.counts["sent"] == 4
    by_rcpt = {r.rcpt_tos[0]: r for r in smtp_sink.handler.received}
    assert sorted(by_rcpt) == sorted(p.email for p in people if p.email)
    stored = _stored(db, campaign)
    for i, person in enumerate(people):
        assert person.email is not None
        received = by_rcpt[person.email]
        message = received.message
        row = stored[person.email]
        expected_subject = "Weekly update" if i % 2 == 0 else f"Quick update for Person {i}"
        assert message["Subject"] == expected_subject
        assert row.metadata_["subject_variant"] == "AB"[i % 2]
        assert received.mail_from == "news@acme.test"
        assert message["From"] == "news@acme.test"
        assert message["To"] == person.email
        assert message["Date"] is not None
        assert message["Message-ID"] == f"<{row.id}@127.0.0.1>"
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert f"Hi Person {i} from Mumbai: Read more" in text.get_content()
        assert f"<p>Hi Person {i} &mdash; Read more</p>" in html.get_content()
        unsubscribe = str(message["List-Unsubscribe"])
        assert unsubscribe.startswith("<http://127.0.0.1:8000/u/") and unsubscribe.endswith(">")
        assert unsubscribe[1:-1] in text.get_content()
        target = read_unsubscribe_token(unsubscribe[1:-1].rsplit("/", 1)[1])
        assert target is not None and (target.org_id, target.address) == (org.id, person.email)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert row.status == "sent" and row.sent_at is not None and row.attempt == 1
        assert row.provider_id and row.provider_id.startswith("Q")
        assert row.lease_expires_at is None


def test_contact_data_is_read_at_delivery_time(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="ann@example.com", name="Ann")
    audience = make_audience(db, org, members=[person])
    make_campaign(db, org, audience, [person], subject="Hi {{ name }}")
    person.name = "Annie"
    db.commit()

    drain()

    assert [r.message["Subject"] for r in smtp_sink.handler.received] == ["Hi Annie"]


def test_header_injection_through_a_variable_is_neutralised(
    db: Session, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="eve@example.com", name="Eve\r\nBcc: victim@example.com")
    audience = make_audience(db, org, members=[person])
    make_campaign(
        db,
        org,
        audience,
        [person],
        subject="Hello {{ name }}",
        variables={"x": "y"},
        from_address="News\r\nBcc: other@example.com <news@acme.test>",
    )

    drain()

    [received] = smtp_sink.handler.received
    assert received.rcpt_tos == ["eve@example.com"]
    message = received.message
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Eve Bcc: victim@example.com"
    header_block = received.data.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))


def test_transient_failure_is_retried_then_sent(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="ann@example.com", name="Ann")
    audience = make_audience(db, org, members=[person])
    campaign, [message] = make_campaign(db, org, audience, [person])
    smtp_sink.handler.data_replies.append("451 4.3.0 Try again later")

    first = drain()

    assert first.counts["retried"] == 1 and smtp_sink.handler.received == []
    row = _stored(db, campaign)["ann@example.com"]
    assert row.status == "scheduled" and row.attempt == 1
    assert row.error is not None and "451" in row.error
    assert row.scheduled_at > utcnow() + timedelta(seconds=20)  # default base: 30 s
    assert row.metadata_["first_scheduled_at"]

    row.scheduled_at = utcnow() - timedelta(seconds=1)  # the backoff has passed
    db.commit()
    second = drain()

    assert second.counts["sent"] == 1
    assert smtp_sink.handler.message_ids() == [f"<{message.id}@127.0.0.1>"]
    row = _stored(db, campaign)["ann@example.com"]
    assert row.status == "sent" and row.attempt == 2 and row.error is None


def test_transient_failures_give_up_after_max_attempts(
    db: Session, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, worker_retry_base_seconds="0", worker_max_attempts="3")
    org = make_org(db)
    person = make_contact(db, org, email="ann@example.com")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(db, org, audience, [person])
    smtp_sink.handler.data_replies.extend(["421 busy"] * 5)

    tally = drain()

    assert tally.counts["retried"] == 2 and tally.counts["failed"] == 1
    row = _stored(db, campaign)["ann@example.com"]
    assert row.status == "failed" and row.attempt == 3
    assert row.error is not None and row.error.startswith("gave up after 3 attempts")
    assert smtp_sink.handler.received == []


def test_permanent_rejection_fails_and_suppresses_the_recipient(
    db: Session, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    gone = make_contact(db, org, email="gone@example.com")
    fine = make_contact(db, org, email="fine@example.com")
    audience = make_audience(db, org, members=[gone, fine])
    campaign, _ = make_campaign(db, org, audience, [gone, fine])
    smtp_sink.handler.rcpt_replies.append("550 5.1.1 No such user")

    tally = drain()

    assert tally.counts["failed"] == 1 and tally.counts["sent"] == 1
    rows = _stored(db, campaign)
    failed = [m for m in rows.values() if m.status == "failed"]
    assert len(failed) == 1 and failed[0].error is not None and "550" in failed[0].error
    suppressed = db.scalars(select(Suppression).where(Suppression.org_id == org.id)).all()
    assert [(s.address, s.reason) for s in suppressed] == [(failed[0].to_address, "bounce")]


def test_rejected_message_body_fails_without_suppressing(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="ann@example.com")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(db, org, audience, [person])
    smtp_sink.handler.data_replies.append("554 5.7.1 Message refused")

    drain()

    assert _stored(db, campaign)["ann@example.com"].status == "failed"
    assert db.scalars(select(Suppression)).all() == []


def test_unreachable_server_is_transient(
    db: Session, settings_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, email_transport=f"smtp://127.0.0.1:{free_port()}")
    org = make_org(db)
    person = make_contact(db, org, email="ann@example.com")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(db, org, audience, [person])

    tally = drain()

    assert tally.counts["retried"] == 1
    row = _stored(db, campaign)["ann@example.com"]
    assert row.status == "scheduled" and row.error is not None
    assert "connection" in row.error.lower()
