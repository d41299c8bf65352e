"""The worker's decisions: what is sent, what is not and why, and how campaigns move."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tests.delivery.conftest import SmtpSink, configure, drain, fresh, senderless_sms_campaign
from tests.factories import make_audience, make_campaign, make_contact, make_org
from tidings.config import get_settings
from tidings.db import get_engine
from tidings.delivery import worker as worker_module
from tidings.delivery.compose import Senders, compose
from tidings.delivery.store import ClaimedMessage, Result, SqlStore
from tidings.delivery.transports.base import Deferred, Delivered, Outgoing
from tidings.delivery.transports.file import directory_of
from tidings.delivery.worker import Worker, WorkerOptions
from tidings.models import Campaign, Message, Suppression, Template
from tidings.timeutil import utcnow


def _messages(db: Session, campaign: Campaign) -> list[Message]:
    fresh(db)
    return list(
        db.scalars(
            select(Message).where(Message.campaign_id == campaign.id).order_by(Message.scheduled_at)
        )
    )


def _outbox() -> Path:
    return directory_of(get_settings().email_transport)


def test_file_transport_writes_one_parseable_eml_per_message(db: Session) -> None:
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com", name=f"P{i}") for i in range(3)]
    audience = make_audience(db, org, members=people)
    campaign, messages = make_campaign(db, org, audience, people, subject="Hi {{ name }}")

    tally = drain()

    assert tally.counts["sent"] == 3
    files = sorted(_outbox().iterdir())
    assert [f.name for f in files] == sorted(f"{m.id}.eml" for m in messages)
    for path in files:
        parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        message_id = path.stem
        assert parsed["Message-ID"] == f"<{message_id}@127.0.0.1>"
        assert parsed["Subject"].startswith("Hi P")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed.get_content_type() == "multipart/alternative"
    rows = _messages(db, campaign)
    assert {m.provider_id for m in rows} == {f.name for f in files}


def test_not_yet_due_messages_are_not_sent(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(2)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(
        db, org, audience, people, starts_at=utcnow() + timedelta(minutes=5)
    )

    assert drain().claimed == 0

    assert smtp_sink.handler.received == []
    assert {m.status for m in _messages(db, campaign)} == {"scheduled"}
    fresh(db)
    assert db.get(Campaign, campaign.id).status == "scheduled"  # type: ignore[union-attr]


def test_campaign_moves_to_in_progress_then_completed(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(2)]
    audience = make_audience(db, org, members=people)
    campaign, messages = make_campaign(db, org, audience, people)
    later = messages[1]
    later.scheduled_at = utcnow() + timedelta(minutes=5)
    db.commit()

    drain()

    fresh(db)
    assert db.get(Campaign, campaign.id).status == "in_progress"  # type: ignore[union-attr]

    later.scheduled_at = utcnow() - timedelta(seconds=1)
    db.commit()
    drain()

    fresh(db)
    done = db.get(Campaign, campaign.id)
    assert done is not None and done.status == "completed" and done.completed_at is not None
    assert [m.status for m in _messages(db, campaign)] == ["sent", "sent"]


def test_cancelled_campaign_is_not_sent_and_stays_cancelled(
    db: Session, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(2)]
    audience = make_audience(db, org, members=people)
    campaign, messages = make_campaign(db, org, audience, people)
    campaign.status = "cancelled"  # cancelled, but its rows not yet swept by the cancel call
    messages[1].status = "cancelled"
    db.commit()

    drain()

    assert smtp_sink.handler.received == []
    assert [m.status for m in _messages(db, campaign)] == ["cancelled", "cancelled"]
    fresh(db)
    assert db.get(Campaign, campaign.id).status == "cancelled"  # type: ignore[union-attr]


def test_address_suppressed_after_scheduling_is_not_sent(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(2)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(db, org, audience, people)
    db.add(Suppression(id="sup_x", org_id=org.id, address="p0@example.com", reason="manual"))
    db.commit()

    tally = drain()

    assert tally.counts["suppressed"] == 1
    assert [r.rcpt_tos for r in smtp_sink.handler.received] == [["p1@example.com"]]
    statuses = {m.to_address: m.status for m in _messages(db, campaign)}
    assert statuses == {"p0@example.com": "suppressed", "p1@example.com": "sent"}


def test_suppression_of_another_organization_does_not_apply(
    db: Session, smtp_sink: SmtpSink
) -> None:
    org, other = make_org(db), make_org(db, "Other")
    person = make_contact(db, org, email="p@example.com")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(db, org, audience, [person])
    db.add(Suppression(id="sup_y", org_id=other.id, address="p@example.com", reason="manual"))
    db.commit()

    drain()

    assert [m.status for m in _messages(db, campaign)] == ["sent"]


def test_render_failure_fails_that_message_and_the_worker_lives_on(
    db: Session, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    good = make_contact(db, org, email="good@example.com", metadata={"n": 1})
    bad = make_contact(db, org, email="bad@example.com", metadata={"n": 0})
    audience = make_audience(db, org, members=[good, bad])
    campaign, _ = make_campaign(
        db, org, audience, [good, bad], subject="Share: {{ 10 | divided_by: n }}"
    )

    tally = drain()

    assert (tally.counts["sent"], tally.counts["failed"]) == (1, 1)
    rows = {m.to_address: m for m in _messages(db, campaign)}
    assert rows["good@example.com"].status == "sent"
    assert rows["bad@example.com"].status == "failed"
    assert rows["bad@example.com"].error is not None
    assert rows["bad@example.com"].error.startswith("subject:")
    fresh(db)
    assert db.get(Campaign, campaign.id).status == "completed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{{ points | round }}", "NaN"),
        ("{{ points | ceil }}", "1e999"),
        ("{{ points | date: '%Y' }}", "99999999999999999999"),
        ("{{ points | modulo: 2 }}", "Infinity"),
    ],
)
def test_a_filter_raising_on_one_contacts_value_fails_that_message_alone(
    db: Session, text: str, value: str
) -> None:
    """python-liquid's filters let Python's own errors through on odd values a CSV cell can hold;
    one jammed the whole batch in "sending", retried for ever."""
    org = make_org(db)
    good = make_contact(db, org, email="good@example.com", metadata={"points": "12.4"})
    bad = make_contact(db, org, email="bad@example.com", metadata={"points": value})
    audience = make_audience(db, org, members=[good, bad])
    campaign, _ = make_campaign(db, org, audience, [good, bad], text=f"You have {text}")

    tally = drain()

    assert (tally.counts["sent"], tally.counts["failed"]) == (1, 1)
    rows = {m.to_address: m for m in _messages(db, campaign)}
    assert rows["good@example.com"].status == "sent"
    assert rows["bad@example.com"].status == "failed"
    assert (rows["bad@example.com"].error or "").startswith("text: a filter failed on this data")


def test_a_message_that_cannot_be_composed_fails_alone(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong composing one message (a bug) fails it, not its batch."""
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(3)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(db, org, audience, people)
    real = worker_module.compose

    def compose(message: ClaimedMessage, *args: object) -> object:
        if message.to_address == "p1@example.com":
            raise RuntimeError("a bug")
        return real(message, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(worker_module, "compose", compose)

    tally = drain()

    assert (tally.counts["sent"], tally.counts["failed"]) == (2, 1)
    failed = next(m for m in _messages(db, campaign) if m.status == "failed")
    assert failed.error == "could not compose the message (RuntimeError); see the log"


def test_template_edits_after_scheduling_do_not_change_the_campaign(
    db: Session, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="p@example.com", name="Pat")
    audience = make_audience(db, org, members=[person])
    template = Template(
        id="tpl_1", org_id=org.id, slug="t", name="T", channel="email", subject="Old {{ name }}"
    )
    db.add(template)
    db.commit()
    campaign, _ = make_campaign(db, org, audience, [person], subject="Old {{ name }}")
    campaign.template_id = template.id
    template.subject = "New {{ name }}"
    db.commit()

    drain()

    assert [r.message["Subject"] for r in smtp_sink.handler.received] == ["Old Pat"]


def test_deleted_contact_gets_nothing(db: Session, smtp_sink: SmtpSink) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="p@example.com")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(db, org, audience, [person])
    db.delete(person)
    db.commit()

    drain()

    assert smtp_sink.handler.received == []
    [message] = _messages(db, campaign)
    assert message.status == "cancelled" and message.error == "the contact was deleted"


def test_a_changed_address_gets_the_message_and_the_old_one_nothing(
    db: Session, smtp_sink: SmtpSink
) -> None:
    """A message goes to its contact's address as it is when it is sent, and its row says so;
    a contact whose address for the channel was removed gets nothing."""
    org = make_org(db)
    moved = make_contact(db, org, email="old@example.com", name="Mo")
    removed = make_contact(db, org, email="gone@example.com", phone="+14155550100")
    audience = make_audience(db, org, members=[moved, removed])
    campaign, _ = make_campaign(db, org, audience, [moved, removed])
    moved.email = "new@example.com"
    removed.email = None
    db.commit()

    drain()

    assert [r.rcpt_tos for r in smtp_sink.handler.received] == [["new@example.com"]]
    rows = {m.contact_id: m for m in _messages(db, campaign)}
    assert (rows[moved.id].status, rows[moved.id].to_address) == ("sent", "new@example.com")
    gone = rows[removed.id]
    assert (gone.status, gone.to_address) == ("cancelled", "gone@example.com")
    assert gone.error == "the contact no longer has an email address"


def test_a_changed_address_is_checked_against_the_suppression_list(
    db: Session, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="old@example.com")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(db, org, audience, [person])
    person.email = "blocked@example.com"
    db.add(Suppression(id="sup_z", org_id=org.id, address="blocked@example.com", reason="manual"))
    db.commit()

    drain()

    assert smtp_sink.handler.received == []
    [message] = _messages(db, campaign)
    assert (message.status, message.to_address) == ("suppressed", "blocked@example.com")


def test_a_body_part_that_renders_blank_is_derived_and_an_empty_email_fails(
    db: Session,
) -> None:
    """A conditional body that is empty for one contact: its HTML comes from the text, not a
    blank part; with both parts blank there is nothing to send."""
    org = make_org(db)
    vip = make_contact(db, org, email="vip@example.com", name="Vic", metadata={"vip": True})
    other = make_contact(db, org, email="other@example.com", name="Olga")
    audience = make_audience(db, org, members=[vip, other])
    campaign, _ = make_campaign(
        db,
        org,
        audience,
        [vip, other],
        html="{% if vip %}<p>Welcome, VIP {{ name }}</p>{% endif %}",
        text="{% if vip %}Welcome, VIP {{ name }}{% endif %}",
    )
    campaign_b, _ = make_campaign(
        db,
        org,
        audience,
        [other],
        html="{% if vip %}<p>VIP</p>{% endif %}",
        text="Hello {{ name }}",
    )

    drain()

    rows = {
        (m.campaign_id, m.contact_id): m
        for m in _messages(db, campaign) + _messages(db, campaign_b)
    }
    assert rows[(campaign.id, vip.id)].status == "sent"
    failed = rows[(campaign.id, other.id)]
    assert failed.status == "failed"
    assert failed.error == "the template renders an empty email body for this contact"
    derived = rows[(campaign_b.id, other.id)]
    assert derived.status == "sent"
    parsed = email.message_from_bytes(
        (_outbox() / f"{derived.id}.eml").read_bytes(), policy=policy.default
    )
    html_part = parsed.get_body(("html",))
    assert html_part is not None and "Hello Olga" in html_part.get_content()


def test_sms_file_transport_writes_json(db: Session) -> None:
    org = make_org(db)
    person = make_contact(db, org, phone="+14155550100", name="Sam")
    audience = make_audience(db, org, members=[person])
    _, [message] = make_campaign(
        db,
        org,
        audience,
        [person],
        channel="sms",
        subject=None,
        html=None,
        text="Hi {{ name }}",
        from_address="+14155550199",
    )

    drain()

    path = directory_of(get_settings().sms_transport) / f"{message.id}.json"
    assert json.loads(path.read_text()) == {
        "id": message.id,
        "from": "+14155550199",
        "to": "+14155550100",
        "body": "Hi Sam",
    }


def test_sms_without_any_sender_is_written_to_the_outbox_without_one(db: Session) -> None:
    """The file transport is the default; it has no use for a sender and records none."""
    campaign = senderless_sms_campaign(db)

    drain()

    [message] = _messages(db, campaign)
    assert message.status == "sent", message.error
    path = directory_of(get_settings().sms_transport) / f"{message.id}.json"
    assert json.loads(path.read_text())["from"] is None


def test_email_without_a_sender_comes_from_the_configured_default(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, email_from="Acme News <news@acme.example>")
    org = make_org(db)
    person = make_contact(db, org, email="ann@example.com")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(db, org, audience, [person], from_address=None)

    drain()

    [message] = _messages(db, campaign)
    assert message.status == "sent", message.error
    path = directory_of(get_settings().email_transport) / f"{message.id}.eml"
    parsed = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert parsed["From"] == "Acme News <news@acme.example>"


@pytest.mark.parametrize("concurrency", [1, 4])
def test_many_messages_across_batches_and_connections(
    db: Session, smtp_sink: SmtpSink, concurrency: int
) -> None:
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(25)]
    audience = make_audience(db, org, members=people)
    campaign, messages = make_campaign(db, org, audience, people)

    tally = drain(batch_size=7, concurrency=concurrency)

    assert tally.batches == 4 and tally.counts["sent"] == 25
    assert sorted(smtp_sink.handler.message_ids()) == sorted(
        f"<{m.id}@127.0.0.1>" for m in messages
    )
    assert {m.status for m in _messages(db, campaign)} == {"sent"}


class _IdleStore:
    """A store with nothing to claim whose next message is due at ``due``."""

    def __init__(self, due: datetime | None) -> None:
        self.due = due

    def next_due_at(self) -> datetime | None:
        return self.due


@pytest.mark.parametrize(
    ("due_in", "nap"),
    [(None, 0.5), (10.0, 0.5), (0.2, 0.2), (0.001, 0.05), (-3.0, 0.05)],
)
def test_an_idle_worker_naps_until_the_next_message_is_due(
    due_in: float | None, nap: float
) -> None:
    now = utcnow()
    due = None if due_in is None else now + timedelta(seconds=due_in)
    worker = Worker(
        _IdleStore(due),  # type: ignore[arg-type]
        lambda channel: None,  # type: ignore[arg-type, return-value]
        Senders(email="a@b.test", sms=None),
        WorkerOptions(poll_seconds=0.5),
        clock=lambda: now,
    )

    assert worker._nap_seconds() == pytest.approx(nap)


@pytest.mark.parametrize(("lease", "deadline"), [(10.0, 5.0), (20.0, 10.0), (120.0, 60.0)])
def test_no_push_starts_in_the_second_half_of_the_lease(lease: float, deadline: float) -> None:
    """A push may wait on its relay for every command of it; the second half of the lease is
    left to the last one begun (the rest of the batch is requeued: see the test below)."""
    worker = Worker(
        SqlStore(get_engine()),
        lambda channel: None,  # type: ignore[arg-type, return-value]
        Senders(email="a@b.test", sms=None),
        WorkerOptions(lease_seconds=lease),
    )
    claimed_at = utcnow()
    assert worker._send_deadline(claimed_at) == claimed_at + timedelta(seconds=deadline)


def test_nothing_is_handed_to_a_transport_after_the_lease_runs_out(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch slower than its lease stops sending (another worker may have claimed the rest) and
    puts what it did not send back in the queue; the next claim sends it."""
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(4)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(db, org, audience, people)
    clock = [utcnow()]
    pushed: list[str] = []

    class Slow:
        def push(self, message: Outgoing) -> Delivered:
            pushed.append(message.to)
            clock[0] += timedelta(seconds=5)  # each message takes 5 s
            return Delivered(provider_id="ok")

        def close(self) -> None:
            pass

    worker = Worker(
        SqlStore(get_engine()),
        lambda channel: Slow(),
        Senders(email="a@b.test", sms=None),
        WorkerOptions(lease_seconds=10, concurrency=1),
        clock=lambda: clock[0],
    )

    first = worker.run_batch()

    # Claimed at t=0 with a 10 s lease: a push may wait on its relay, so none starts after half
    # the lease (t=5): sent at t=0; the others never started.
    assert (first.counts["sent"], first.counts["requeued"]) == (1, 3)
    rows = _messages(db, campaign)
    assert sorted(m.status for m in rows) == ["scheduled", "scheduled", "scheduled", "sent"]
    assert all(m.error is None for m in rows)
    # An untried message gives its attempt back, and stays due when it was.
    untried = [m for m in rows if m.status == "scheduled"]
    assert {m.attempt for m in untried} == {0}
    assert {m.scheduled_at for m in untried} == {campaign.starts_at}
    worker.options = WorkerOptions(lease_seconds=1000, concurrency=1)
    worker.run_batch()
    assert sorted(pushed) == [f"p{i}@example.com" for i in range(4)]
    assert {(m.status, m.attempt) for m in _messages(db, campaign)} == {("sent", 1)}


def test_requeues_never_use_up_the_attempts(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """However often a slow batch puts a message back untried, it still gets every try: one
    real try per claim that pushed it, counted against ``max_attempts``."""
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(3)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(db, org, audience, people)
    clock = [utcnow()]

    class Slow:
        def push(self, message: Outgoing) -> Deferred:
            clock[0] += timedelta(seconds=5)
            return Deferred(reason="451 try later")

        def close(self) -> None:
            pass

    worker = Worker(
        SqlStore(get_engine()),
        lambda channel: Slow(),
        Senders(email="a@b.test", sms=None),
        WorkerOptions(lease_seconds=10, concurrency=1, max_attempts=2, retry_base_seconds=0),
        clock=lambda: clock[0],
    )
    for _ in range(12):
        worker.run_batch()
    rows = _messages(db, campaign)
    assert {(m.status, m.attempt) for m in rows} == {("failed", 2)}
    assert {m.error for m in rows} == {"gave up after 2 attempts: 451 try later"}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///var/outbox", "/var/outbox"),
        ("file://./outbox/email", "outbox/email"),
        ("file://outbox/sms", "outbox/sms"),
        ("file:///tmp/with%20space", "/tmp/with space"),
    ],
)
def test_file_transport_urls(url: str, path: str) -> None:
    assert directory_of(url) == Path(path)


def test_a_campaign_with_nothing_to_deliver_is_completed(db: Session) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="p@example.com")
    audience = make_audience(db, org, members=[person])
    everyone_suppressed, _ = make_campaign(db, org, audience, [])
    not_started, _ = make_campaign(db, org, audience, [], starts_at=utcnow() + timedelta(minutes=5))
    still_sending, messages = make_campaign(db, org, audience, [person])
    messages[0].status = "sending"
    cancelled, _ = make_campaign(db, org, audience, [], status="cancelled")
    db.commit()

    drain()

    fresh(db)
    status = {c.id: c.status for c in db.scalars(select(Campaign))}
    assert status == {
        everyone_suppressed.id: "completed",
        not_started.id: "scheduled",
        still_sending.id: "scheduled",
        cancelled.id: "cancelled",
    }


class _Crash(BaseException):
    """Stands in for the process dying mid-batch (kill -9): nothing after it runs."""


def test_outcomes_are_committed_in_chunks_during_a_batch(db: Session) -> None:
    """A worker that dies mid-batch has already recorded what the relay accepted, except the last
    chunk: only those can be sent again when its lease expires (duplicates are bounded)."""
    org = make_org(db)
    people = [make_contact(db, org, email=f"p{i:02d}@example.com") for i in range(10)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(db, org, audience, people)
    pushed: list[str] = []

    class DiesOnTheSeventh:
        def push(self, message: Outgoing) -> Delivered:
            if len(pushed) == 6:
                raise _Crash
            pushed.append(message.to)
            return Delivered(provider_id=f"id-{len(pushed)}")

        def close(self) -> None:
            pass

    worker = Worker(
        SqlStore(get_engine()),
        lambda channel: DiesOnTheSeventh(),
        Senders(email="a@b.test", sms=None),
        WorkerOptions(lease_seconds=60, concurrency=1, record_every=4),
    )
    with pytest.raises(_Crash):
        worker.run_batch()

    statuses = sorted(m.status for m in _messages(db, campaign))
    # Four accepted messages were committed as one chunk; the next two were accepted but not yet
    # recorded, so they (and the four never pushed) still belong to the dead worker's lease.
    assert statuses.count("sent") == 4
    assert statuses.count("sending") == 6


def test_a_slice_records_its_chunks_on_one_connection(db: Session) -> None:
    """Each chunk of outcomes is its own transaction, but a slice checks its database connection
    out of the pool once (and pings it once), not once per chunk."""
    org = make_org(db)
    people = [make_contact(db, org, email=f"c{i:02d}@example.com") for i in range(10)]
    audience = make_audience(db, org, members=people)
    campaign, _ = make_campaign(db, org, audience, people)

    class Accepts:
        def push(self, message: Outgoing) -> Delivered:
            return Delivered(provider_id=f"id-{message.to}")

        def close(self) -> None:
            pass

    commits = 0

    class CountingStore(SqlStore):
        @contextmanager
        def recorder(self) -> Iterator[Callable[[Sequence[Result], datetime], int]]:
            with super().recorder() as record:

                def counted(results: Sequence[Result], now: datetime) -> int:
                    nonlocal commits
                    commits += 1
                    return record(results, now)

                yield counted

    engine = get_engine()
    checkouts: list[object] = []
    store = CountingStore(engine)
    worker = Worker(
        store,
        lambda channel: Accepts(),
        Senders(email="a@b.test", sms=None),
        WorkerOptions(lease_seconds=60, concurrency=1, record_every=3),
    )
    claimed = store.claim(10, lease_seconds=60, now=utcnow())
    context = store.load_context(claimed)
    work = [(m, compose(m, context, worker.senders, utcnow())) for m in claimed]

    def count_checkout(*_: object) -> None:
        checkouts.append(None)

    event.listen(engine, "checkout", count_checkout)
    try:
        results, accepted = worker._deliver_slice(work, utcnow() + timedelta(minutes=1))  # type: ignore[arg-type]
    finally:
        event.remove(engine, "checkout", count_checkout)

    assert (len(results), accepted, commits, len(checkouts)) == (10, 10, 4, 1)
    assert {m.status for m in _messages(db, campaign)} == {"sent"}


def test_a_failing_database_is_retried_with_backoff_and_logged_once_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failed batch doubles the wait, up to a cap; the traceback is logged once, then a
    line per try, and a line when batches run again."""

    class Down(SqlStore):
        calls = 0

        def claim(self, limit: int, lease_seconds: float, now: datetime) -> list[ClaimedMessage]:
            Down.calls += 1
            if Down.calls <= 9:
                raise OSError("connection refused\nmore detail")
            return []

    class Recording(threading.Event):
        waits: list[float] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.waits.append(timeout or 0.0)
            if len(self.waits) >= 10:
                self.set()
            return self.is_set()

    worker = Worker(
        Down(get_engine()),
        lambda channel: None,  # type: ignore[arg-type, return-value]
        Senders(email="a@b.test", sms=None),
        WorkerOptions(poll_seconds=0.5),
    )
    stop = Recording()
    with caplog.at_level("INFO", logger="tidings.worker"):
        worker.run(stop)
    assert stop.waits[:9] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    records = [r for r in caplog.records if r.getMessage().startswith("batch")]
    assert [bool(r.exc_info) for r in records[:9]] == [True] + [False] * 8
    assert "(OSError: connection refused);" in records[1].getMessage()
    assert any("run again after 9 failures" in r.getMessage() for r in records)


def test_an_unreachable_database_is_a_line_from_the_first_failure(
    db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """Its 80-line traceback says nothing the line does not."""

    class Unreachable(SqlStore):
        def claim(self, limit: int, lease_seconds: float, now: datetime) -> list[ClaimedMessage]:
            raise OperationalError("SELECT", {}, OSError("connection refused"))

    class Twice(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            self.set()
            return True

    worker = Worker(
        Unreachable(get_engine()),
        lambda channel: None,  # type: ignore[arg-type, return-value]
        Senders(email="a@b.test", sms=None),
        WorkerOptions(poll_seconds=0.5),
    )
    with caplog.at_level("INFO", logger="tidings.worker"):
        worker.run(Twice())
    [record] = [r for r in caplog.records if r.getMessage().startswith("batch")]
    assert record.exc_info is None and "connection refused" in record.getMessage()
