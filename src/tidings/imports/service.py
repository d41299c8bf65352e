"""CSV import into an audience: one code path behind the internal route, the public route and the
dashboard.

The hot path is shaped for 10,000 rows with no query and no ORM object per row:

1. parse and validate the whole file in memory (``csv.py``); a refused file costs no SQL;
2. ONE select of the organization's contacts that match any address in the file;
3. resolve every row to an existing or a new contact in memory (``plan.py``, last row wins);
4. one set-based UPDATE of the contacts that changed and one bulk INSERT of the new ones
   (``store.py``: COPY on PostgreSQL);
5. one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into ``audience_members``; its row count is
   what ``contact_count`` grows by, in one atomic ``contact_count = contact_count + n``.

Everything runs in the caller's transaction, so an import lands whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.audiences.service import AudienceNotFound
from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.contacts.service import count_contacts
from tidings.db import is_postgres
from tidings.errors import Conflict, Forbidden
from tidings.imports import store
from tidings.imports.csv import RowError, parse_csv
from tidings.imports.plan import PlannedContact, plan_rows
from tidings.models import Audience
from tidings.tenancy import get_for_org
from tidings.timeutil import utcnow

MAX_REPORTED_ERRORS = 100
AUDIT_ACTION = "audience.csv_imported"


class ImportForbidden(Forbidden):
    message = "Only owners of the organization can import contacts."


class ImportConflict(Conflict):
    message = "Another change to the same contacts happened at the same time; retry the import."
    retry_after = True


class ImportBusy(Conflict):
    code = "import_in_progress"
    message = (
        "Other imports into this organization have been running for a while; "
        "retry this one shortly."
    )
    retry_after = True


@dataclass(frozen=True)
class ImportResult:
    received: int  # non-blank data rows
    created: int  # new contacts
    updated: int  # existing contacts matched by a good row (their non-empty cells written)
    added: int  # contacts newly added to the audience
    invalid: int  # rows left out
    errors: list[RowError]  # the first MAX_REPORTED_ERRORS, in row order
    contact_count: int  # the audience's member count after the import


def internal_actor(session: Session, audience_id: str) -> Principal:
    """The internal token belongs to no organization: it acts in the organization of the audience
    it addresses. This is the one lookup that is deliberately not scoped by ``tenancy``."""
    org_id = session.scalar(select(Audience.org_id).where(Audience.id == audience_id))
    if org_id is None:
        raise AudienceNotFound(f"Audience {audience_id!r} not found.")
    return Principal(org_id=org_id, actor_type="internal", actor_id=None)


def import_csv(session: Session, actor: Principal, audience_id: str, data: bytes) -> ImportResult:
    """Upsert the file's contacts into ``actor``'s organization and add them to the audience.

    Dashboard users must be owners (seed 002: the import drawer is owners-only); the rule lives
    here so the dashboard, which calls this function directly, cannot forget it. API keys are
    gated by their scopes at the route.
    """
    if actor.actor_type == "user" and actor.role != "owner":
        raise ImportForbidden()
    # Locked (PostgreSQL) so that concurrent imports into one audience count members correctly.
    audience = get_for_org(
        session, Audience, actor.org_id, audience_id, AudienceNotFound, for_update=True
    )
    parsed = parse_csv(data)
    postgres = is_postgres(session)
    if postgres and not store.one_import_at_a_time(session, actor.org_id):
        raise ImportBusy()
    existing = store.matching_contacts(session, actor.org_id, parsed.rows, postgres)
    contacts, conflicts = plan_rows(parsed.rows, existing)
    created, added, contact_count = _write(session, actor.org_id, audience, contacts, postgres)
    errors = sorted([*parsed.errors, *conflicts], key=lambda error: error.row)
    invalid = parsed.invalid + len(conflicts)
    result = ImportResult(
        received=parsed.received,
        created=created,
        # Counted by row, like received and invalid, so the three always add up: every good row
        # either created a contact or matched one (that existed, or that an earlier row created).
        updated=parsed.received - invalid - created,
        added=added,
        invalid=invalid,
        errors=errors[:MAX_REPORTED_ERRORS],
        contact_count=contact_count,
    )
    _audit(session, actor, audience.id, result)
    return result


def _write(
    session: Session,
    org_id: str,
    audience: Audience,
    contacts: list[PlannedContact],
    postgres: bool,
) -> tuple[int, int, int]:
    """Apply the plan; returns (contacts created, members added, the audience's new count)."""
    now = utcnow()
    changed = [c for c in contacts if c.existing and c.changed]
    new = [c for c in contacts if not c.existing]
    try:
        store.update_contacts(session, org_id, changed, now, postgres)
        store.insert_contacts(session, org_id, new, now)
        # Contacts created just now cannot be members yet: their memberships are a plain bulk
        # write (COPY), and only existing contacts go through INSERT ... ON CONFLICT DO NOTHING,
        # whose per-row speculative insertion was a third of a 10,000-row import on PostgreSQL.
        store.insert_members(session, org_id, audience.id, [c.id for c in new], now)
        added = len(new) + store.add_members(
            session, org_id, audience.id, [c.id for c in contacts if c.existing], now, postgres
        )
        contact_count = store.grow_contact_count(session, audience, added, now)
        count_contacts(session, org_id, len(new))
    except IntegrityError as exc:
        # Only a concurrent writer can get here (a contact created through the API with an
        # address of the file): the plan never gives one address to two contacts, and imports
        # run one at a time (``store.one_import_at_a_time``).
        raise ImportConflict() from exc
    return len(new), added, contact_count


def _audit(session: Session, actor: Principal, audience_id: str, result: ImportResult) -> None:
    record_event(
        session,
        actor,
        AUDIT_ACTION,
        target_type="audience",
        target_id=audience_id,
        data={
            "received": result.received,
            "created": result.created,
            "updated": result.updated,
            "added": result.added,
            "invalid": result.invalid,
            "contactCount": result.contact_count,
        },
    )
