"""PostgreSQL serves ``search`` from one trigram index, and only if the query's text is the index's.

The index is on an expression (``models.contact_search_text``); a query written differently (a
bound parameter for a constant, another order of fields) would still be correct, only a scan of
the organization. So the statements the API runs are explained here, not just run.
"""

from __future__ import annotations

from typing import cast

import pytest
from psycopg import sql
from sqlalchemy import Table, text
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from tests.factories import make_audience, make_contact, make_org
from tidings.audiences.service import available_stmt, members_stmt
from tidings.contacts.service import list_contacts_stmt
from tidings.db import Prepared, bulk_insert
from tidings.ids import new_id
from tidings.imports.store import CONTACT_COLUMNS, MEMBER_COLUMNS
from tidings.models import SEARCH_INDEX, AudienceMember, Contact
from tidings.timeutil import utcnow


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("the trigram index exists on PostgreSQL only")


def _plan(db: Session, query: Prepared, *, generic: bool = False) -> str:
    """The plan of ``query`` with its values as bound parameters, as the API sends it. ``generic``:
    planned without the values, as PostgreSQL may plan a prepared statement it reuses; a constant
    of the search expression sent as a parameter would then no longer match the index's."""
    compiled = query.stmt.compile(dialect=psycopg_dialect(paramstyle="numeric_dollar"))
    params = compiled.construct_params(dict(query.values))
    values = tuple(params[name] for name in compiled.positiontup or ())
    connection = db.connection()
    raw = connection.connection.driver_connection
    mode = "force_generic_plan" if generic else "force_custom_plan"
    connection.exec_driver_sql(f"SET LOCAL plan_cache_mode = {mode}")
    connection.exec_driver_sql(f"PREPARE search_plan AS {compiled}")
    try:
        arguments = ", ".join(sql.Literal(value).as_string(raw) for value in values)
        rows = raw.execute(f"EXPLAIN EXECUTE search_plan({arguments})").fetchall()
        return "\n".join(row[0] for row in rows)
    finally:
        connection.exec_driver_sql("DEALLOCATE search_plan")


def test_every_contact_search_is_served_by_the_search_index(
    postgres_only: None, db: Session
) -> None:
    """Enough contacts, half of them members, that reading them costs more than the index."""
    org = make_org(db)
    now = utcnow()
    rows = [
        (new_id("con"), org.id, f"c{i}@example.com", None, f"Person {i}", {}, now, now)
        for i in range(20_000)
    ]
    bulk_insert(db, cast(Table, Contact.__table__), CONTACT_COLUMNS, rows)
    audience = make_audience(db, org)
    members = [(audience.id, row[0], org.id, now) for row in rows[::2]]
    bulk_insert(db, cast(Table, AudienceMember.__table__), MEMBER_COLUMNS, members)
    db.commit()
    # As autovacuum would have done: move the new entries from the pending list into the index.
    db.execute(
        text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"), {"index": SEARCH_INDEX}
    )
    db.execute(text("ANALYZE contacts"))
    for stmt in (
        list_contacts_stmt(org.id, "c12345@"),
        members_stmt(audience, "Person 12345"),
        available_stmt(audience, "son 12345"),
        # A term with the separator: the index finds candidates, each field is then checked.
        list_contacts_stmt(org.id, "Person 12345\nc12345"),
    ):
        assert SEARCH_INDEX in _plan(db, stmt), _plan(db, stmt)
    # Knowing nothing of the values, the planner may start elsewhere for an audience; for the
    # organization's contacts the search is the only selective condition.
    searched = list_contacts_stmt(org.id, "c12345@")
    assert SEARCH_INDEX in _plan(db, searched, generic=True), _plan(db, searched, generic=True)


def test_analyze_keeps_no_sample_of_the_search_text(postgres_only: None, db: Session) -> None:
    """A 100-value sample of the joined text made the planner's estimate of a term's matches a
    coin toss between 100 and 10,000 rows at a million contacts (migration 0004)."""
    org = make_org(db)
    make_contact(db, org, email="a@example.com", name="Ann")
    db.commit()
    db.execute(text("ANALYZE contacts"))
    sampled = text("SELECT count(*) FROM pg_stats WHERE tablename = :index")
    assert db.scalar(sampled, {"index": SEARCH_INDEX}) == 0
    assert db.scalar(sampled, {"index": "contacts"}) > 0
