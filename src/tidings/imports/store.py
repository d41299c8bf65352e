"""The import's bulk SQL: a handful of set-based statements whatever the file size.

Lists of values travel as ONE bound parameter (``db.one_of``, ``db.value_list``).

Measured with ``python -m bench.imports`` (2-CPU VM shared with other jobs), re-importing 10,000
rows that all carry an email and a phone, SQLite / PostgreSQL: address validation 0.46 / 0.51 s,
matching SELECT 0.10 / 0.07 s, planning 0.01 s, UPDATE 0.13 / 0.25 s, membership INSERT
0.01 / 0.03 s, commit < 0.01 s. Validation (email-validator, phonenumbers) dominates; the SQL is
a quarter of the time and grows with the file, not with the organization's contact count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import (
    String,
    Table,
    bindparam,
    literal,
    or_,
    select,
    text,
    true,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tidings.db import bulk_insert, one_of, value_list
from tidings.imports.csv import ContactRow
from tidings.imports.plan import PlannedContact
from tidings.models import Audience, AudienceMember, Contact, UTCDateTime
from tidings.tenancy import org_filter

LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that ran out
CONTACTS = cast(Table, Contact.__table__)
AUDIENCES = cast(Table, Audience.__table__)
MEMBERS = cast(Table, AudienceMember.__table__)
CONTACT_COLUMNS = ("id", "org_id", "email", "phone", "name", "metadata", "created_at", "updated_at")
MEMBER_COLUMNS = ("audience_id", "contact_id", "org_id", "created_at")


IMPORT_WAIT = "20s"  # under the 30 s a request may wait for its database turn


def one_import_at_a_time(session: Session, org_id: str) -> bool:
    """Waits (PostgreSQL) until no other import of the organization is running, at most
    ``IMPORT_WAIT``; False if that passed. Released at commit. Two imports adding the same new
    addresses could not see each other's uncommitted contacts: both inserted them, and the
    unique index gave the second a 409 or, with the files in another order, a deadlock. In
    turn, the second finds the first's contacts and updates them. The wait is bounded because
    the waiting import holds a connection and a writer's turn that other organizations need.
    SQLite writes one transaction at a time anyway."""
    session.execute(text(f"SET LOCAL lock_timeout = '{IMPORT_WAIT}'"))
    try:
        with session.begin_nested():
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"tidings.import:{org_id}"},
            )
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        return False
    finally:
        session.execute(text("SET LOCAL lock_timeout TO DEFAULT"))
    return True


def matching_contacts(
    session: Session, org_id: str, rows: Sequence[ContactRow], postgres: bool
) -> list[PlannedContact]:
    """Every contact of the organization holding an email or phone that appears in ``rows``: at
    most one per address of the file, never the whole table.

    On PostgreSQL the contacts are found first, then read again locked, in id order (two imports
    touching the same contacts cannot deadlock), so a concurrent edit cannot be overwritten by
    metadata merged from a stale read. A contact whose address changed meanwhile is left out;
    one that newly took an address of the file makes the insert fail (``ImportConflict``).
    """
    emails = sorted({row.email for row in rows if row.email})
    phones = sorted({row.phone for row in rows if row.phone})
    if not emails and not phones:
        return []
    columns = (
        CONTACTS.c.id,
        CONTACTS.c.email,
        CONTACTS.c.phone,
        CONTACTS.c.name,
        CONTACTS.c.metadata,
    )
    if postgres:
        ids = _pg_matching_ids(session, org_id, emails, phones)
        if not ids:
            return []
        stmt = (
            select(*columns)
            .where(org_filter(CONTACTS.c, org_id), one_of(CONTACTS.c.id, ids, postgres))
            .order_by(CONTACTS.c.id)
            # Not FOR UPDATE: that lock also blocks the key-share locks a membership's foreign
            # key takes, and adding these contacts to another audience meanwhile deadlocked.
            .with_for_update(key_share=True)
        )
    else:
        stmt = select(*columns).where(
            org_filter(CONTACTS.c, org_id),
            or_(
                one_of(CONTACTS.c.email, emails, postgres),
                one_of(CONTACTS.c.phone, phones, postgres),
            ),
        )
    wanted_emails, wanted_phones = set(emails), set(phones)
    return [
        PlannedContact(c_id, email, phone, name, dict(metadata or {}), existing=True)
        for c_id, email, phone, name, metadata in session.execute(stmt)
        if email in wanted_emails or phone in wanted_phones
    ]


def _pg_matching_ids(
    session: Session, org_id: str, emails: Sequence[str], phones: Sequence[str]
) -> list[str]:
    """One probe of the (org_id, email) or (org_id, phone) unique index per address of the file.

    Written as a LATERAL subquery that PostgreSQL may not flatten (``OFFSET 0``): given
    ``email = ANY(<10,000 addresses>)`` it estimated thousands of matches and scanned the whole
    organization (70 ms at 200,000 contacts, growing with the organization) and spent 18 ms
    planning; the probes take 15 ms whatever the organization's size."""
    probes = []
    for column, addresses in ((CONTACTS.c.email, emails), (CONTACTS.c.phone, phones)):
        if not addresses:
            continue
        wanted = value_list(addresses, True)
        contact = (
            select(CONTACTS.c.id)
            .where(org_filter(CONTACTS.c, org_id), column == wanted.c.value)
            .offset(0)
            .lateral()
        )
        probes.append(select(contact.c.id).select_from(wanted.join(contact, true())))
    return list(session.scalars(union(*probes) if len(probes) > 1 else probes[0]))


# One statement for any number of rows: the arrays are zipped back into rows by ``unnest``.
_PG_UPDATE_CONTACTS = text(
    """
    UPDATE contacts AS c
       SET email = v.email, phone = v.phone, name = v.name,
           metadata = CAST(v.metadata AS jsonb), updated_at = :now
      FROM unnest(CAST(:ids AS text[]), CAST(:emails AS text[]), CAST(:phones AS text[]),
                  CAST(:names AS text[]), CAST(:metadata AS text[]))
           AS v(id, email, phone, name, metadata)
     WHERE c.org_id = :org_id AND c.id = v.id
    """
)


def update_contacts(
    session: Session,
    org_id: str,
    contacts: Sequence[PlannedContact],
    now: datetime,
    postgres: bool,
) -> None:
    """Write the final state of changed existing contacts: ``UPDATE ... FROM unnest(...)`` on
    PostgreSQL, one prepared statement run with ``executemany`` on SQLite (one writer, no round
    trips: the database is in-process)."""
    if not contacts:
        return
    if postgres:
        session.execute(
            _PG_UPDATE_CONTACTS,
            {
                "ids": [c.id for c in contacts],
                "emails": [c.email for c in contacts],
                "phones": [c.phone for c in contacts],
                "names": [c.name for c in contacts],
                "metadata": [json.dumps(c.metadata) for c in contacts],
                "now": now,
                "org_id": org_id,
            },
        )
        return
    stmt = (
        update(CONTACTS)
        .where(org_filter(CONTACTS.c, org_id), CONTACTS.c.id == bindparam("b_id"))
        .values(
            {
                CONTACTS.c.email: bindparam("b_email"),
                CONTACTS.c.phone: bindparam("b_phone"),
                CONTACTS.c.name: bindparam("b_name"),
                CONTACTS.c.metadata: bindparam("b_metadata", type_=CONTACTS.c.metadata.type),
                CONTACTS.c.updated_at: now,
            }
        )
    )
    session.execute(
        stmt,
        [
            {
                "b_id": c.id,
                "b_email": c.email,
                "b_phone": c.phone,
                "b_name": c.name,
                "b_metadata": c.metadata,
            }
            for c in contacts
        ],
    )


def insert_contacts(
    session: Session, org_id: str, contacts: Sequence[PlannedContact], now: datetime
) -> None:
    """New contacts through ``bulk_insert``: COPY on PostgreSQL, executemany on SQLite."""
    bulk_insert(
        session,
        CONTACTS,
        CONTACT_COLUMNS,
        ((c.id, org_id, c.email, c.phone, c.name, c.metadata, now, now) for c in contacts),
    )


def insert_members(
    session: Session, org_id: str, audience_id: str, contact_ids: Sequence[str], now: datetime
) -> None:
    """Memberships of contacts that cannot be members yet (created in this transaction), through
    ``bulk_insert``: no conflict to check, so no ``ON CONFLICT`` machinery per row."""
    bulk_insert(
        session,
        MEMBERS,
        MEMBER_COLUMNS,
        ((audience_id, contact_id, org_id, now) for contact_id in contact_ids),
    )


def add_members(
    session: Session,
    org_id: str,
    audience_id: str,
    contact_ids: Sequence[str],
    now: datetime,
    postgres: bool,
) -> int:
    """Add the contacts to the audience; returns how many were not members yet.

    ``ON CONFLICT DO NOTHING`` makes re-adding a member a no-op without first reading the
    membership, and the statement's row count is exactly the number of new members.
    """
    if not contact_ids:
        return 0
    ids = value_list(contact_ids, postgres)
    rows = select(
        literal(audience_id, String),
        ids.c.value,
        literal(org_id, String),
        literal(now, UTCDateTime),
    ).where(true())  # SQLite needs a WHERE to parse INSERT ... SELECT ... ON CONFLICT
    insert = pg_insert(MEMBERS) if postgres else sqlite_insert(MEMBERS)
    stmt = (
        insert.from_select(list(MEMBER_COLUMNS), rows)
        .on_conflict_do_nothing()
        # SQLAlchemy only keeps an INSERT's row count when asked to.
        .execution_options(preserve_rowcount=True)
    )
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def grow_contact_count(session: Session, audience: Audience, added: int, now: datetime) -> int:
    """``contact_count = contact_count + n`` in the database (never a value computed here), so a
    concurrent membership change is never lost; returns the new count."""
    if not added:
        return audience.contact_count
    stmt = (
        update(AUDIENCES)
        .where(org_filter(AUDIENCES.c, audience.org_id), AUDIENCES.c.id == audience.id)
        .values({AUDIENCES.c.contact_count: AUDIENCES.c.contact_count + added})
        .values({AUDIENCES.c.updated_at: now})
        .returning(AUDIENCES.c.contact_count)
    )
    return int(session.execute(stmt).scalar_one())
