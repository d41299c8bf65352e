"""PostgreSQL serves ``search`` from one trigram index, and only if the query's text is the index's.

The index is on an expression (``models.contact_search_text``); a query written differently (a
bound parameter for a constant, another order of fields) would still be correct, only a scan of
the organization. So the statements the API runs are explained here, not just run.
"""

from __future__ import annotations

from typing import cast

import pytest
from psycopg import sql
from sqlalchemy import Table, event, text
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from tests.factories import make_audience, make_contact, make_org
from tidings.audiences.service import (
    available_stmt,
    members_stmt,
)
from tidings.contacts import trigrams
from tidings.contacts.service import (
    list_contacts_stmt,
)
from tidings.db import Prepared, bulk_insert
from tidings.ids import new_id
from tidings.imports.store import CONTACT_COLUMNS, MEMBER_COLUMNS
from tidings.models import SEARCH_INDEX, Audience, AudienceMember, Contact, Organization
from tidings.pagination import PageParams, paginate
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
        list_contacts_stmt(db, org.id, "c12345@"),
        members_stmt(db, audience, "Person 12345"),
        available_stmt(db, audience, "son 12345"),
        # A term with the separator: the index finds candidates, each field is then checked.
        list_contacts_stmt(db, org.id, "Person 12345\nc12345"),
        # A phone as people write it: as typed, or its digits.
        list_contacts_stmt(db, org.id, "(415) 555-0123"),
    ):
        assert SEARCH_INDEX in _plan(db, stmt), _plan(db, stmt)
        assert "Seq Scan" not in _plan(db, stmt), _plan(db, stmt)
    # Knowing nothing of the values, the planner may start elsewhere for an audience; for the
    # organization's contacts the search is the only selective condition.
    searched = list_contacts_stmt(db, org.id, "c12345@")
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


def test_the_trigrams_of_a_value_are_pg_trgms(postgres_only: None, db: Session) -> None:
    """``contacts.trigrams`` estimates what the index holds; it must cut words as pg_trgm does."""
    for value in ("Ann", "Jo-Ann O'Neil 7", "user98765@example15.com", "+14155550123", "a_b%c\\d"):
        indexed = db.scalars(text("SELECT unnest(show_trgm(:value))"), {"value": value})
        assert trigrams.trigrams(value) == set(indexed), value


def _searchable(db: Session, count: int) -> tuple[Organization, Audience]:
    """``count`` contacts whose addresses all read user…@example.com, half of them members, in
    the index and analysed as autovacuum would have left them; and decoys, a member and not,
    that hold a term's rarer piece but not the term (``other1234@`` for ``user1234@``), or a
    backslash inside that piece (which, unescaped, would drop them from the lead's matches)."""
    org = make_org(db)
    now = utcnow()

    def row(email: str, name: str) -> tuple[object, ...]:
        return (new_id("con"), org.id, email, None, name, {}, now, now)

    rows = [row(f"user{i}@example.com", f"Person {i}") for i in range(count)]
    decoys = [
        row(f"other{i}@example.{tld}", f"user{i} kqz\\wvy")
        for i in (1234, 2345)
        for tld in ("com", "org")
    ]
    bulk_insert(db, cast(Table, Contact.__table__), CONTACT_COLUMNS, rows + decoys)
    audience = make_audience(db, org)
    members = [(audience.id, row[0], org.id, now) for row in rows[::2] + decoys[::2]]
    bulk_insert(db, cast(Table, AudienceMember.__table__), MEMBER_COLUMNS, members)
    db.commit()
    db.execute(
        text("SELECT gin_clean_pending_list(CAST(:index AS regclass))"), {"index": SEARCH_INDEX}
    )
    db.execute(text("ANALYZE contacts"))
    trigrams.forget_shares()
    return org, audience


def test_a_led_search_looks_up_its_rare_piece_first(postgres_only: None, db: Session) -> None:
    """Every address holds "use", "ser", "exa", "com": a pasted address is looked up by a piece
    without them first, and the whole address then checked on the few contacts it leaves."""
    org, audience = _searchable(db, 20_000)
    for query in (
        list_contacts_stmt(db, org.id, "user12345@example.com"),
        members_stmt(db, audience, "USER12344@"),
        available_stmt(db, audience, "user12345@Example"),
    ):
        lead, whole = query.values["lead_pattern"], query.values["search_pattern"]
        assert lead.strip("%").lower() in whole.lower() and "use" not in lead.lower(), lead
        plan = _plan(db, query)
        assert SEARCH_INDEX in plan, plan
        index_condition = plan[plan.index("Index Cond") :]  # spans lines: the text has newlines
        assert index_condition.index(f"'{lead}'") < index_condition.index(f"'{whole}'"), plan


@pytest.mark.parametrize(
    "term", ["user1234@example.com", "ser2345", "USER2345 KQZ\\wvy", "son\nuser2345@"]
)
def test_a_led_search_finds_what_the_whole_term_finds(
    postgres_only: None, db: Session, monkeypatch: pytest.MonkeyPatch, term: str
) -> None:
    """The decoys match the lead, or would if it were not escaped: only the whole term's
    condition keeps them out."""
    org, audience = _searchable(db, 3_000)
    params = PageParams(page=1, limit=100)
    lists = (
        (list_contacts_stmt, org.id),
        (members_stmt, audience),
        (available_stmt, audience),
    )
    led = []
    for build, owner in lists:
        query = build(db, owner, term)  # type: ignore[operator]
        assert "lead_pattern" in query.values, (term, query.values)
        led.append(paginate(db, query, params, lambda contact: contact.email))
    monkeypatch.setattr(trigrams, "COMMON_SHARE", 2.0)  # no trigram is common: no lead
    whole = []
    for build, owner in lists:
        query = build(db, owner, term)  # type: ignore[operator]
        assert "lead_pattern" not in query.values
        whole.append(paginate(db, query, params, lambda contact: contact.email))
    assert led == whole
    if "\n" not in term:  # (a term holding the separator matches no single field)
        assert led[0].total > 0


def test_statistics_are_read_once_in_a_while(
    postgres_only: None, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics change only when ANALYZE runs: a search reads them at most every few minutes."""
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "pg_stats" in statement:
            reads.append(statement)

    event.listen(db.get_bind(), "before_cursor_execute", count)
    try:
        clock = 1000.0
        monkeypatch.setattr(trigrams, "monotonic", lambda: clock)
        list_contacts_stmt(db, "org_x", "user1@example.com")
        list_contacts_stmt(db, "org_x", "user2@example.com")
        assert len(reads) == 1
        clock += trigrams.SHARES_TTL_SECONDS + 1
        list_contacts_stmt(db, "org_x", "user3@example.com")
        assert len(reads) == 2
    finally:
        event.remove(db.get_bind(), "before_cursor_execute", count)


def test_statistics_are_found_on_the_search_path(postgres_only: None, db: Session) -> None:
    """``contacts`` is looked up as the queries find it, not in ``current_schema()``: the
    first schema on the search path, which need not hold it."""
    _searchable(db, 3_000)
    db.execute(text("CREATE SCHEMA without_contacts"))  # (rolled back with the session)
    db.execute(text("SET LOCAL search_path = without_contacts, public"))
    assert trigrams.shares(db)["use"] > 0.9
