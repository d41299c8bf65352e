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

The upgrade runs in one transaction and holds exclusive locks on ``audiences``,
``audience_members`` and ``contacts`` until it commits; the new key is checked against every
membership (a scan: seconds at millions). Stop the API and the workers while it runs. A
membership whose organization differs from its audience's (only a bug could have written one)
stops the upgrade with the query that lists them, before anything is changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MEMBER_AUDIENCE_FK = "fk_audience_members_audience_id_audiences"
MEMBER_ORG_FK = "fk_audience_members_org_id_organizations"


def upgrade() -> None:
    _refuse_memberships_across_organizations()
    op.create_index("uq_audiences_id_org_id", "audiences", ["id", "org_id"], unique=True)
    # PostgreSQL alters the table in place; SQLite cannot alter a foreign key, so the batch
    # rebuilds audience_members (nothing refers to it: dropping the old copy cascades nowhere).
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


ACROSS_ORGANIZATIONS = """
    SELECT m.audience_id, m.contact_id, m.org_id, a.org_id AS audience_org_id
      FROM audience_members AS m JOIN audiences AS a ON a.id = m.audience_id
     WHERE m.org_id <> a.org_id
"""


def _refuse_memberships_across_organizations() -> None:
    found = op.get_bind().execute(sa.text(f"SELECT count(*) FROM ({ACROSS_ORGANIZATIONS}) AS x"))
    count = found.scalar_one()
    if count:
        raise RuntimeError(
            f"{count} audience memberships name another organization than their audience's; "
            "the new key would refuse them. Nothing was changed. List them with:"
            f"{ACROSS_ORGANIZATIONS}and delete or correct them, then upgrade again."
        )


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
