"""organizations.contact_count: the total of GET /v1/contacts without counting

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 20:50:00

``GET /v1/contacts`` (and an audience's available contacts) reported its ``total`` by counting
the organization's contacts on every request: an index scan of 130-420 ms at a million contacts.
Like ``audiences.contact_count``, the organization now keeps its count, changed in the same
transaction as the contacts (``contacts.service.count_contacts``).

The column is added with a default of 0 and filled by one count per organization: a scan of
``contacts`` while the migration holds its lock on ``organizations``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.add_column(
            sa.Column("contact_count", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE organizations SET contact_count = "
        "(SELECT count(*) FROM contacts WHERE contacts.org_id = organizations.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("organizations") as batch_op:
        batch_op.drop_column("contact_count")
