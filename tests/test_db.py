"""``db``'s list parameters: a list of any texts travels as one parameter and arrives intact."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.db import WAL_SIZE_LIMIT, is_postgres, one_of, value_list

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
