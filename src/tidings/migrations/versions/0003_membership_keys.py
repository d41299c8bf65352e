"""membership keys: one foreign key per membership for its audience and organization

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 13:10:00

A CSV import of 10,000 new contacts writes 10,000 contacts and 10,000 memberships, and on
PostgreSQL the database's per-row work is most of its time (``bench/imports.py``: the raw COPY of
both, with nothing of ours around it, took 610-670 ms against a 500 ms target):

* ``audience_members`` had three foreign keys, each checked by a query per inserted row:
  ``audience_id → audiences``, ``contact_id → contacts``, ``org_id → organizations``. The first and
  the last become one composite key ``(audience_id, org_id) → audiences (id, org_id)``: one check
  instead of two (~60 ms of 10,000 rows), and a membership can no longer carry an organization
  other than its audience's, which nothing in the schema guaranteed before. An organization's
  deletion still cascades (organization → audiences → memberships).
* ``ix_contacts_org_id_id`` duplicated the primary key for every lookup we make (an id is unique
  on its own) and cost ~45 ms per 10,000 new contacts: ids are random, so every insert lands on a
  random page of that index.

Measured together, in one run: the import floor 650 → 520 ms, the import itself 690 → 600 ms.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MEMBER_AUDIENCE_FK = "fk_audience_members_audience_id_audiences"
MEMBER_ORG_FK = "fk_audience_members_org_id_organizations"


def upgrade() -> None:
    op.create_index("uq_audiences_id_org_id", "audiences", ["id", "org_id"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        # NOT VALID, then VALIDATE: existing memberships are checked without blocking writes to
        # the table for the length of the scan.
        op.drop_constraint(MEMBER_ORG_FK, "audience_members", type_="foreignkey")
        op.drop_constraint(MEMBER_AUDIENCE_FK, "audience_members", type_="foreignkey")
        op.execute(
            f"ALTER TABLE audience_members ADD CONSTRAINT {MEMBER_AUDIENCE_FK} "
            "FOREIGN KEY (audience_id, org_id) REFERENCES audiences (id, org_id) "
            "ON DELETE CASCADE NOT VALID"
        )
        op.execute(f"ALTER TABLE audience_members VALIDATE CONSTRAINT {MEMBER_AUDIENCE_FK}")
    else:
        # SQLite cannot alter a foreign key: the batch rebuilds audience_members (nothing refers
        # to it, so dropping the old copy cascades nowhere).
        with op.batch_alter_table("audience_members") as batch_op:
            batch_op.drop_constraint(MEMBER_ORG_FK, type_="foreignkey")
            batch_op.drop_constraint(MEMBER_AUDIENCE_FK, type_="foreignkey")
            batch_op.create_foreign_key(
                MEMBER_AUDIENCE_FK,
                "audiences",
                ["audience_id", "org_id"],
                ["id", "org_id"],
                ondelete="CASCADE",
            )
    op.drop_index("ix_contacts_org_id_id", table_name="contacts")


def downgrade() -> None:
    op.create_index("ix_contacts_org_id_id", "contacts", ["org_id", "id"])
    with op.batch_alter_table("audience_members") as batch_op:
        batch_op.drop_constraint(MEMBER_AUDIENCE_FK, type_="foreignkey")
        batch_op.create_foreign_key(
            MEMBER_AUDIENCE_FK, "audiences", ["audience_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            MEMBER_ORG_FK, "organizations", ["org_id"], ["id"], ondelete="CASCADE"
        )
    op.drop_index("uq_audiences_id_org_id", table_name="audiences")
