"""contacts.name in Unicode's composed form (NFC), as names are now written

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 03:55:00

Names (and search terms) are now composed when written (``contacts.normalize.normalize_name``):
a name typed on macOS arrives decomposed, and a composed search term missed it. Names stored
before are composed here, so that search finds them too. ``updated_at`` is left alone: the
name reads the same. There is nothing to undo.
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BATCH = 10_000


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # normalize() and IS NORMALIZED need a UTF8 database, which is what PostgreSQL creates
        # by default and what Tidings' text needs anyway.
        if bind.execute(sa.text("SHOW server_encoding")).scalar() == "UTF8":
            op.execute(
                "UPDATE contacts SET name = normalize(name, NFC) "
                "WHERE name IS NOT NULL AND name IS NOT NFC NORMALIZED"
            )
        return
    # SQLite has no normalize(): the names are read in batches and the decomposed ones rewritten.
    last = ""
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, name FROM contacts WHERE id > :last AND name IS NOT NULL "
                "ORDER BY id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            return
        changed = [
            {"id": contact_id, "name": unicodedata.normalize("NFC", name)}
            for contact_id, name in rows
            if not unicodedata.is_normalized("NFC", name)
        ]
        if changed:
            bind.execute(sa.text("UPDATE contacts SET name = :name WHERE id = :id"), changed)
        last = rows[-1][0]


def downgrade() -> None:
    """Nothing to undo: a composed name is the same name."""
