"""campaigns outlive their audience: deleting an audience keeps its campaigns and messages

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 20:40:00

``campaigns.audience_id`` referred to the audience with ``ON DELETE CASCADE``, so deleting an
audience deleted every campaign ever sent to it and, through ``messages.campaign_id``, every
message: the record of what was sent to whom, with the subject variant each recipient got. The
key now sets ``audience_id`` to NULL instead. A campaign still scheduled or in progress keeps
the audience from being deleted (409), as before.

PostgreSQL alters the key in place. SQLite cannot alter a foreign key, so the batch rebuilds
``campaigns``; ``messages`` refers to it with ``ON DELETE CASCADE``, and dropping the old copy
with foreign keys on would first delete every message. Migrations on SQLite therefore run with
foreign keys off and check them before committing (``migrations/env.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

AUDIENCE_FK = "fk_campaigns_audience_id_audiences"


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_constraint(AUDIENCE_FK, type_="foreignkey")
        batch_op.alter_column("audience_id", existing_type=sa.String(32), nullable=True)
        batch_op.create_foreign_key(
            AUDIENCE_FK, "audiences", ["audience_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    """The campaigns of deleted audiences (and their messages) go, as the old key had them go."""
    op.execute(
        "DELETE FROM messages WHERE campaign_id IN "
        "(SELECT id FROM campaigns WHERE audience_id IS NULL)"
    )
    op.execute("DELETE FROM campaigns WHERE audience_id IS NULL")
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_constraint(AUDIENCE_FK, type_="foreignkey")
        batch_op.alter_column("audience_id", existing_type=sa.String(32), nullable=False)
        batch_op.create_foreign_key(
            AUDIENCE_FK, "audiences", ["audience_id"], ["id"], ondelete="CASCADE"
        )
