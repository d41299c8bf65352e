"""The worker's database side: claim due messages, load what rendering needs, record outcomes.

Every statement here is on the delivery hot path, so each is one deliberate Core statement per
batch (never one per message), and each says why it is shaped the way it is. The worker owns the
transactions through this class; nothing here knows about SMTP or HTTP.

Correctness with many workers rests on two things:
- **Claiming** moves rows from ``scheduled`` to ``sending`` with ``attempt + 1`` and a lease in one
  statement. On PostgreSQL the candidate rows are locked ``FOR UPDATE SKIP LOCKED``, so concurrent
  workers take disjoint rows without waiting on each other; on SQLite the transaction starts with
  ``BEGIN IMMEDIATE`` (the database's one write lock), so two worker processes claim one after the
  other. A row whose lease has expired (its worker died) is claimed again the same way.
- **Fencing**: an outcome is written only ``WHERE attempt = <the attempt we claimed> AND status =
  'sending'``. A worker that stalled past its lease finds the row re-claimed (attempt moved on) and
  its late result is refused instead of overwriting the newer worker's.

A message a worker claimed but never tried (its batch ran out of time: ``Worker._send_deadline``)
goes back with its attempt given back (``attempt - 1``), so ``attempts`` counts tries only. The
fence still holds: only the current holder can give it back, and a stale holder's token never
meets ``sending`` again (every claim after it moves ``attempt`` past that token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from tidings.contacts.normalize import suppression_key
from tidings.db import one_of
from tidings.delivery.render import ContactData
from tidings.delivery.suppress import add_suppressions
from tidings.models import Campaign, Contact, Message, Suppression, UTCDateTime

messages: Table = Message.__table__  # type: ignore[assignment]
campaigns: Table = Campaign.__table__  # type: ignore[assignment]
contacts: Table = Contact.__table__  # type: ignore[assignment]
suppressions: Table = Suppression.__table__  # type: ignore[assignment]

# States in which a message still has to be delivered; a campaign with none left is complete.
PENDING = ("scheduled", "sending")


@dataclass(frozen=True)
class ClaimedMessage:
    id: str
    org_id: str
    campaign_id: str
    contact_id: str
    channel: str
    to_address: str
    scheduled_at: datetime
    metadata: dict[str, Any]
    attempt: int  # the fencing token this worker holds


@dataclass(frozen=True)
class CampaignSnapshot:
    id: str
    org_id: str
    channel: str
    status: str
    from_address: str | None
    subject: str | None
    html: str | None
    text: str | None
    subject_variants: list[str] | None
    variables: dict[str, Any]


@dataclass(frozen=True)
class BatchContext:
    """Everything rendering a batch needs, read in three queries just before sending."""

    campaigns: dict[str, CampaignSnapshot]
    contacts: dict[tuple[str, str], ContactData]  # by (org_id, contact_id)
    suppressed: frozenset[tuple[str, str]]  # (org_id, address)


@dataclass(frozen=True)
class Result:
    """The outcome of one claimed message, as it will be stored."""

    message: ClaimedMessage
    status: str  # sent | failed | suppressed | cancelled | scheduled (a retry, or untried)
    at: datetime
    provider_id: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    bounce: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    untried: bool = False  # back to ``scheduled`` without a try: its attempt is given back


_CAMPAIGN_COLUMNS = (
    campaigns.c.id,
    campaigns.c.org_id,
    campaigns.c.channel,
    campaigns.c.status,
    campaigns.c.from_address,
    campaigns.c.template_subject,
    campaigns.c.template_html,
    campaigns.c.template_text,
    campaigns.c.subject_variants,
    campaigns.c.variables,
)
_CONTACT_COLUMNS = (
    contacts.c.org_id,
    contacts.c.id,
    contacts.c.name,
    contacts.c.email,
    contacts.c.phone,
    contacts.c["metadata"],
)
_CLAIMED_COLUMNS = (
    messages.c.id,
    messages.c.org_id,
    messages.c.campaign_id,
    messages.c.contact_id,
    messages.c.channel,
    messages.c.to_address,
    messages.c.scheduled_at,
    messages.c["metadata"],
    messages.c.attempt,
)


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction. On SQLite it takes the write lock up front (``BEGIN IMMEDIATE``):
        a deferred transaction that reads and then writes can fail with SQLITE_BUSY when another
        process wrote in between; an immediate one waits its turn (busy_timeout) instead."""
        with self._writer() as connection, connection.begin():
            yield connection

    @contextmanager
    def _writer(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            connection.execution_options(sqlite_begin="IMMEDIATE")
            yield connection

    @contextmanager
    def _reader(self) -> Iterator[Connection]:
        """Reads need no transaction: each statement is consistent on its own (under READ
        COMMITTED, statements of one transaction did not share a snapshot either). On PostgreSQL
        autocommit spares the BEGIN and ROLLBACK round trips."""
        with self.engine.connect() as connection:
            if self.postgres:
                connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    @contextmanager
    def _atomic(self, connection: Connection, statements: int) -> Iterator[None]:
        """A write of ``statements`` statements on ``connection``, all or nothing. One statement
        is atomic on its own, so on PostgreSQL it runs in autocommit: BEGIN and COMMIT were two of
        the three round trips of a chunk of outcomes, paid every 20 messages."""
        if self.postgres and statements == 1:
            default = connection.default_isolation_level
            connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                yield
            finally:
                # Ends SQLAlchemy's autobegun Transaction (the driver sends nothing in
                # autocommit), so the connection can leave autocommit again; a connection lost
                # mid-statement is discarded by the pool instead, and its error stands.
                if not connection.invalidated:
                    connection.rollback()
                    connection.execution_options(isolation_level=default)
            return
        with connection.begin():
            yield

    def claim(self, limit: int, lease_seconds: float, now: datetime) -> list[ClaimedMessage]:
        """Up to ``limit`` messages, leases that expired first (they are the oldest work), then due
        messages in scheduled order; their campaigns move to ``in_progress`` in the same
        transaction."""
        lease_expires_at = now + timedelta(seconds=lease_seconds)
        expired = and_(messages.c.status == "sending", messages.c.lease_expires_at < now)
        due = and_(messages.c.status == "scheduled", messages.c.scheduled_at <= now)
        with self._write() as connection:
            claimed = _claim(connection, expired, limit, now, lease_expires_at)
            if len(claimed) < limit:
                claimed += _claim(connection, due, limit - len(claimed), now, lease_expires_at)
            campaign_ids = sorted({m.campaign_id for m in claimed})
            if campaign_ids:
                connection.execute(
                    update(campaigns)
                    .where(campaigns.c.id.in_(campaign_ids), campaigns.c.status == "scheduled")
                    .values(status="in_progress", updated_at=now)
                )
        return claimed

    def next_due_at(self) -> datetime | None:
        """When the earliest scheduled message is due (the first entry of
        ix_messages_status_scheduled_at): an idle worker sleeps until then rather than a whole poll
        interval, so ramped sends go out on time."""
        with self._reader() as connection:
            return connection.execute(
                select(func.min(messages.c.scheduled_at)).where(messages.c.status == "scheduled")
            ).scalar_one_or_none()

    def load_context(self, claimed: Sequence[ClaimedMessage]) -> BatchContext:
        """Campaign snapshots, contacts as they are now, and which addresses are suppressed now.

        The queries look rows up by lists of keys (primary key; the (org_id, address) unique
        index), each list one bound parameter (``db.one_of``); the results are then keyed by
        (org_id, …), and compose looks them up with the *message's* org_id, so a batch spanning
        many organizations can never use one organization's contact or suppression for another's
        message."""
        campaign_ids = sorted({m.campaign_id for m in claimed})
        org_ids = sorted({m.org_id for m in claimed})
        contact_ids = sorted({m.contact_id for m in claimed})
        pg = self.postgres
        with self._reader() as connection:
            campaign_rows = connection.execute(
                select(*_CAMPAIGN_COLUMNS).where(one_of(campaigns.c.id, campaign_ids, pg))
            ).all()
            contact_rows = connection.execute(
                select(*_CONTACT_COLUMNS).where(
                    one_of(contacts.c.id, contact_ids, pg), one_of(contacts.c.org_id, org_ids, pg)
                )
            ).all()
            # The addresses the messages were scheduled to, and the contacts' addresses now
            # (``compose.readdressed``).
            current = (address for row in contact_rows for address in (row.email, row.phone))
            scheduled = (m.to_address for m in claimed)
            addresses = sorted({suppression_key(a) for a in (*scheduled, *current) if a})
            suppressed_rows = connection.execute(
                select(suppressions.c.org_id, suppressions.c.address).where(
                    one_of(suppressions.c.org_id, org_ids, pg),
                    one_of(suppressions.c.address, addresses, pg),
                )
            ).all()
        return BatchContext(
            campaigns={
                row.id: CampaignSnapshot(
                    id=row.id,
                    org_id=row.org_id,
                    channel=row.channel,
                    status=row.status,
                    from_address=row.from_address,
                    subject=row.template_subject,
                    html=row.template_html,
                    text=row.template_text,
                    subject_variants=row.subject_variants,
                    variables=row.variables or {},
                )
                for row in campaign_rows
            },
            contacts={
                (row.org_id, row.id): ContactData(
                    name=row.name, email=row.email, phone=row.phone, metadata=row.metadata or {}
                )
                for row in contact_rows
            },
            suppressed=frozenset((row.org_id, row.address) for row in suppressed_rows),
        )

    def record(self, results: Sequence[Result], now: datetime) -> int:
        """Write outcomes in one transaction: one fenced ``executemany`` per kind of outcome, and
        bounced recipients onto the suppression list. Returns how many outcomes were accepted (the
        rest were fenced out: another worker holds those messages now), or -1 where the driver
        cannot count rows of an executemany."""
        with self.recorder() as record:
            return record(results, now)

    @contextmanager
    def recorder(self) -> Iterator[Callable[[Sequence[Result], datetime], int]]:
        """``record`` on one connection for a run of calls (a slice of a batch, committed every
        few messages): each call is still its own transaction, but the pool checkout and its
        liveness ping are paid once per slice, not once per chunk of 20 messages."""
        with self._writer() as connection:
            yield partial(self._record, connection)

    def _record(self, connection: Connection, results: Sequence[Result], now: datetime) -> int:
        sent = [r for r in results if r.status == "sent"]
        retried = [r for r in results if r.status == "scheduled" and not r.untried]
        untried = [r for r in results if r.untried]
        final = [r for r in results if r.status not in ("sent", "scheduled")]
        bounced = [(r.message.org_id, r.message.to_address) for r in results if r.bounce]
        statements = sum(1 for group in (sent, retried, untried, final, bounced) if group)
        counts: list[int] = []
        with self._atomic(connection, statements):
            if sent:
                counts.append(self._record_sent(connection, sent, now))
            for statement, group in (
                (_RECORD_RETRY, retried),
                (_RECORD_UNTRIED, untried),
                (_RECORD_FINAL, final),
            ):
                if group:
                    rows = [_params(r, now) for r in group]
                    counts.append(connection.execute(statement, rows).rowcount)
            if bounced:
                add_suppressions(connection, bounced, "bounce", now)
        return -1 if any(count < 0 for count in counts) else sum(counts)

    def _record_sent(self, connection: Connection, sent: Sequence[Result], now: datetime) -> int:
        """The outcome of almost every message. On PostgreSQL one ``UPDATE ... FROM unnest(...)``
        (five array parameters) instead of an ``executemany`` of one fenced UPDATE per message:
        binding and pipelining 20 statements was a tenth of the worker's CPU."""
        if not self.postgres:
            return int(connection.execute(_RECORD_SENT, [_params(r, now) for r in sent]).rowcount)
        parameters = {
            "ids": [r.message.id for r in sent],
            "attempts": [r.message.attempt for r in sent],
            "to_addresses": [r.message.to_address for r in sent],
            "sent_at": [r.at for r in sent],
            "provider_ids": [r.provider_id for r in sent],
            "now": now,
        }
        return int(connection.execute(_PG_RECORD_SENT, parameters).rowcount)

    def complete_campaigns(self, campaign_ids: Sequence[str], now: datetime) -> int:
        """``in_progress → completed`` for campaigns with nothing left to deliver.

        Run in its own transaction *after* the outcomes are committed: two workers finishing the
        last messages of one campaign at once would each still see the other's rows as
        ``sending`` inside their own outcome transactions, and neither would complete it. Run
        after, the later of the two checks sees both commits. Cancelled campaigns are never
        touched (only ``in_progress`` moves)."""
        if not campaign_ids:
            return 0
        pending = exists().where(
            messages.c.campaign_id == campaigns.c.id, messages.c.status.in_(PENDING)
        )
        with self._write() as connection:
            result = connection.execute(
                update(campaigns)
                .where(
                    campaigns.c.id.in_(sorted(set(campaign_ids))),
                    campaigns.c.status == "in_progress",
                    ~pending,
                )
                .values(status="completed", completed_at=now, updated_at=now)
            )
        return result.rowcount

    def complete_settled_campaigns(self, now: datetime) -> int:
        """Campaigns past their start with nothing left to deliver that no batch completed: every
        recipient was already suppressed when it was scheduled (no message to claim), or its last
        messages were settled by someone else. Idle workers run this now and then; it reads
        campaigns by status, a small set, and probes messages through
        ix_messages_campaign_id_status."""
        pending = exists().where(
            messages.c.campaign_id == campaigns.c.id, messages.c.status.in_(PENDING)
        )
        with self._write() as connection:
            result = connection.execute(
                update(campaigns)
                .where(
                    campaigns.c.status.in_(("scheduled", "in_progress")),
                    campaigns.c.starts_at <= now,
                    ~pending,
                )
                .values(status="completed", completed_at=now, updated_at=now)
            )
        return result.rowcount


def _claim(
    connection: Connection,
    condition: ColumnElement[bool],
    limit: int,
    now: datetime,
    lease_expires_at: datetime,
) -> list[ClaimedMessage]:
    # ``UPDATE … WHERE id IN (SELECT … ORDER BY scheduled_at LIMIT n FOR UPDATE SKIP LOCKED)
    # RETURNING …``: one round trip. The inner SELECT walks ix_messages_status_scheduled_at in
    # order, so the oldest due messages go first and ramped campaigns are sent on time. SQLite
    # ignores FOR UPDATE; there the write lock taken by BEGIN IMMEDIATE does the same job.
    candidates = (
        select(messages.c.id)
        .where(condition)
        .order_by(messages.c.scheduled_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(messages)
        .where(messages.c.id.in_(candidates.scalar_subquery()))
        .values(
            status="sending",
            attempt=messages.c.attempt + 1,
            lease_expires_at=lease_expires_at,
            updated_at=now,
        )
        .returning(*_CLAIMED_COLUMNS)
    )
    claimed = [
        ClaimedMessage(
            id=row.id,
            org_id=row.org_id,
            campaign_id=row.campaign_id,
            contact_id=row.contact_id,
            channel=row.channel,
            to_address=row.to_address,
            scheduled_at=row.scheduled_at,
            metadata=dict(row.metadata or {}),
            attempt=row.attempt,
        )
        for row in connection.execute(statement)
    ]
    # RETURNING comes in no particular order; send in scheduled order within the batch too.
    claimed.sort(key=lambda m: (m.scheduled_at, m.id))
    return claimed


# The fence: a result lands only on the row as this worker claimed it.
_FENCE = (
    messages.c.id == bindparam("b_id"),
    messages.c.attempt == bindparam("b_attempt"),
    messages.c.status == "sending",
)
_RECORD_SENT = (
    update(messages)
    .where(*_FENCE)
    .values(
        status="sent",
        to_address=bindparam("b_to"),
        sent_at=bindparam("b_at"),
        provider_id=bindparam("b_provider_id"),
        error=None,
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)
# ``_RECORD_SENT`` for a whole chunk in one statement, with the same fence per row.
_PG_RECORD_SENT = text(
    """
    UPDATE messages AS m
       SET status = 'sent', to_address = v.to_address, sent_at = v.sent_at,
           provider_id = v.provider_id, error = NULL, lease_expires_at = NULL, updated_at = :now
      FROM unnest(CAST(:ids AS text[]), CAST(:attempts AS integer[]),
                  CAST(:to_addresses AS text[]), CAST(:sent_at AS timestamptz[]),
                  CAST(:provider_ids AS text[]))
           AS v(id, attempt, to_address, sent_at, provider_id)
     WHERE m.id = v.id AND m.attempt = v.attempt AND m.status = 'sending'
    """
).bindparams(
    # Through the UTC column type, as the ORM statements are: a naive time is refused, not read in
    # the database server's time zone.
    bindparam("now", type_=UTCDateTime),
    bindparam("sent_at", type_=ARRAY(UTCDateTime)),
)
_RECORD_RETRY = (
    update(messages)
    .where(*_FENCE)
    .values(
        {
            "status": "scheduled",
            "to_address": bindparam("b_to"),
            "scheduled_at": bindparam("b_retry_at"),
            "error": bindparam("b_error"),
            "metadata": bindparam("b_metadata", type_=messages.c["metadata"].type),
            "lease_expires_at": None,
            "updated_at": bindparam("b_now"),
        }
    )
)
# Due as it was: its ``scheduled_at`` (the ramp's time, and lateness's reference) is kept.
_RECORD_UNTRIED = (
    update(messages)
    .where(*_FENCE)
    .values(
        status="scheduled",
        attempt=messages.c.attempt - 1,
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)
_RECORD_FINAL = (
    update(messages)
    .where(*_FENCE)
    .values(
        status=bindparam("b_status"),
        to_address=bindparam("b_to"),
        error=bindparam("b_error"),
        lease_expires_at=None,
        updated_at=bindparam("b_now"),
    )
)


def _params(result: Result, now: datetime) -> dict[str, Any]:
    """One executemany row: the fence (id, attempt) and the values of this kind of outcome."""
    params: dict[str, Any] = {
        "b_id": result.message.id,
        "b_attempt": result.message.attempt,
        "b_to": result.message.to_address,  # the contact's address now (``compose.readdressed``)
        "b_now": now,
        "b_error": result.error,
    }
    if result.status == "sent":
        params.update(b_at=result.at, b_provider_id=result.provider_id)
    elif result.untried:
        return params  # ``_RECORD_UNTRIED`` needs the fence alone
    elif result.status == "scheduled":
        params.update(b_retry_at=result.retry_at, b_metadata=result.metadata)
    else:
        params.update(b_status=result.status)
    return params
