"""contact search and listing indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:30:00

``GET /audiences/:id/contacts`` and ``GET /contacts`` page through contacts newest first and
search name, email and phone by case-insensitive substring. At a million contacts both were a scan
and a sort of the organization's contacts per request (see ``bench/listing.py``):

* ``ix_contacts_org_id_created_at`` (both backends): the list order (read backwards; ties on
  ``created_at`` are put in id order by an incremental sort), so a page is the first entries of an
  index range; for an audience PostgreSQL walks it and probes the membership primary key, or
  (small audience) reads the members and sorts a few rows.
* ``ix_contacts_{name,email,phone}_trgm`` (PostgreSQL): pg_trgm GIN indexes, which serve
  ``ILIKE '%term%'`` for terms of three characters or more; the three are OR-ed with a bitmap.
  ``pg_trgm`` is a trusted extension (PostgreSQL 13+): the database owner may create it.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEARCHED = ("name", "email", "phone")


def upgrade() -> None:
    op.create_index("ix_contacts_org_id_created_at", "contacts", ["org_id", "created_at"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in SEARCHED:
        op.create_index(
            f"ix_contacts_{column}_trgm",
            "contacts",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for column in SEARCHED:
            op.drop_index(f"ix_contacts_{column}_trgm", table_name="contacts")
    op.drop_index("ix_contacts_org_id_created_at", table_name="contacts")
