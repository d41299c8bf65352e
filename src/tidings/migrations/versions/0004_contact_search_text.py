"""contact search: one trigram index over name, email and phone together

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 15:00:00

Migration 0002 gave ``search`` one pg_trgm GIN index per column (name, email, phone), OR-ed by a
BitmapOr. This replaces them (PostgreSQL only; SQLite has none) with one index on the three
joined by a newline (``models.contact_search_text``), which ``search`` now matches instead:

* Writing: a new contact's trigrams go into one index, once each, instead of into three (name
  and email share most of theirs, and an absent phone still cost an entry). The raw COPY of
  10,000 contacts (``bench/imports.py``'s file) took 258-280 ms with three, 206-222 ms with one,
  in alternating runs; the index is 60 MB at a million contacts instead of 101 MB for three.
* Reading: one ILIKE to plan and one index to scan instead of three: a search's planning time
  fell from 1.3 to 0.2 ms and its execution by about a fifth (``bench/listing.py``'s fixture).
* No statistics on the joined text (``SET STATISTICS 0``): ANALYZE would keep a histogram of 100
  sampled values, and the planner estimates a term's matches by how many of those it matches.
  For a name that 111 contacts of a million have, that is 0 of 100 (estimate: 100 rows) or 1 of
  100 (estimate: 10,000 rows), depending on which rows the sample caught; at 10,000 PostgreSQL
  chose a parallel plan (9 ms instead of 2 ms) or hash-joined the audience's whole membership
  (130 ms). Without statistics it estimates from the term itself (each character makes a match
  rarer), which keeps selective terms on index probes whatever the sample was.

Building the index reads every contact (about 8 s per million here) and blocks writes to
``contacts`` until the migration commits; searches keep the old indexes until then.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("name", "email", "phone")
SEARCH_INDEX = "ix_contacts_search_trgm"
# The expression of ``models.contact_search_text``, as PostgreSQL must see it in the query for
# the index to serve it. E'\n' is the newline ``models.SEARCH_SEPARATOR``.
SEARCH_TEXT = "coalesce(name, '') || E'\\n' || coalesce(email, '') || E'\\n' || coalesce(phone, '')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE INDEX {SEARCH_INDEX} ON contacts USING gin (({SEARCH_TEXT}) gin_trgm_ops)")
    op.execute(f"ALTER INDEX {SEARCH_INDEX} ALTER COLUMN 1 SET STATISTICS 0")
    for column in COLUMNS:
        op.drop_index(f"ix_contacts_{column}_trgm", table_name="contacts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in COLUMNS:
        op.create_index(
            f"ix_contacts_{column}_trgm",
            "contacts",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    op.drop_index(SEARCH_INDEX, table_name="contacts")
