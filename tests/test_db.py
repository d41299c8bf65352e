"""``db``'s list parameters: a list of any texts travels as one parameter and arrives intact."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import cast

import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests.factories import make_org
from tidings.db import WAL_SIZE_LIMIT, bulk_insert, is_postgres, one_of, value_list
from tidings.ids import new_id
from tidings.imports.store import CONTACT_COLUMNS
from tidings.models import Contact
from tidings.timeutil import utcnow

AWKWARD = [
    "plain",
    "",
    'a "quoted" local part',
    "back\\slash",
    "comma, {braces}, [brackets]",
    "NULL",
    "naïve ünïcode ✉",
    "new\nline",
    "x" * 500,
]


def test_value_list_carries_any_text_intact(db: Session) -> None:
    values = value_list(AWKWARD, is_postgres(db))
    assert sorted(db.scalars(select(values.c.value))) == sorted(AWKWARD)


def test_one_of_matches_exactly_the_listed_texts(db: Session) -> None:
    postgres = is_postgres(db)
    candidates = select(value_list([*AWKWARD, "absent", "Plain"], postgres).c.value).subquery()
    stmt = select(candidates.c.value).where(one_of(candidates.c.value, AWKWARD, postgres))
    assert sorted(db.scalars(stmt)) == sorted(AWKWARD)


def test_sqlite_truncates_its_write_ahead_log_after_a_checkpoint(backend: str, db: Session) -> None:
    """Without a limit SQLite keeps the WAL file at its largest size forever (1.2 GB after a
    burst of imports); every connection sets one."""
    if backend != "sqlite":
        pytest.skip("a SQLite setting")
    assert db.connection().exec_driver_sql("PRAGMA journal_size_limit").scalar() == WAL_SIZE_LIMIT


def test_bulk_insert_raises_the_drivers_errors_as_sqlalchemys(db: Session) -> None:
    """A COPY's own psycopg error (or sqlite3's) reached the app's handlers unwrapped: a 500
    where a conflict or an outage has its own answer."""
    org = make_org(db)
    now = utcnow()
    row = (new_id("con"), org.id, "a@example.com", None, None, {}, now, now)
    with pytest.raises(IntegrityError):
        bulk_insert(db, cast(Table, Contact.__table__), CONTACT_COLUMNS, [row, row])
    db.rollback()


def test_bulk_insert_keeps_the_instant_of_any_aware_time_and_refuses_a_naive_one(
    db: Session,
) -> None:
    """Timestamps reach either database as the instant they name, whatever their offset; a naive
    one is refused, as the ORM's column type refuses it, rather than read in the server's zone."""
    org = make_org(db)
    paris = timezone(timedelta(hours=1))
    at = datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=paris)
    row = (new_id("con"), org.id, "t@example.com", None, None, {}, at, at)
    bulk_insert(db, cast(Table, Contact.__table__), CONTACT_COLUMNS, [row])
    stored = db.scalar(select(Contact.created_at).where(Contact.id == row[0]))
    assert stored == at and stored is not None and stored.utcoffset() == timedelta(0)
    naive = (new_id("con"), org.id, "n@example.com", None, None, {}, at.replace(tzinfo=None), at)
    with pytest.raises(ValueError, match="naive datetime"):
        bulk_insert(db, cast(Table, Contact.__table__), CONTACT_COLUMNS, [naive])
    db.rollback()
