"""Audiences and their memberships: the rules, no HTTP. Callers own the transaction.

``audiences.contact_count`` is maintained here, in the same transaction as every membership change,
so listing audiences never counts members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, String, bindparam, delete, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.audiences.schemas import MAX_CONTACT_IDS
from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.contacts.service import (
    ORG_ID,
    SearchShape,
    contacts_in_org,
    newest_first,
    search_values,
)
from tidings.db import Prepared, is_postgres
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.ids import new_id
from tidings.models import Audience, AudienceMember, Campaign, Contact, UTCDateTime
from tidings.slugs import (
    SLUG_PATTERN,
    add_with_chosen_slug,
    add_with_derived_slug,
    slug_in_use,
    slugify,
)
from tidings.tenancy import for_org, get_for_org, org_filter
from tidings.timeutil import utcnow

ACTIVE_CAMPAIGN_STATUSES = ("scheduled", "in_progress")


class AudienceNotFound(NotFound):
    pass


class ContactsNotFound(NotFound):
    """Some ids of an add are not contacts of the org; ``details.contactIds`` names them."""


class AudienceInUse(Conflict):
    code = "audience_in_use"


class SlugTaken(Conflict):
    code = "slug_taken"


# --- slugs -------------------------------------------------------------------------------------


def _validate_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise ValidationFailed(
            f"slug {slug!r} is not valid: use lower-case letters, digits and single hyphens",
            details=[{"field": "slug", "message": "must match ^[a-z0-9]+(-[a-z0-9]+)*$"}],
        )
    return slug


def _slug_taken(slug: str) -> SlugTaken:
    return SlugTaken(
        f"Another audience of your organization has the slug {slug!r}; choose another.",
        details={"field": "slug", "value": slug},
    )


# --- audiences ---------------------------------------------------------------------------------


def get_audience(session: Session, org_id: str, audience_id: str) -> Audience:
    return get_for_org(session, Audience, org_id, audience_id, AudienceNotFound)


def _lock_audience(session: Session, org_id: str, audience_id: str) -> Audience:
    """Every membership change (add, remove, import, send, contact deletion) locks the audience
    row *first* (PostgreSQL; SQLite has one writer anyway). One lock order for all of them: an add
    used to insert memberships and then update the count, while an import held the audience row
    and then inserted memberships, so the two deadlocked under load (found by ``make soak``).
    Changes to one audience now queue; they are short."""
    return get_for_org(session, Audience, org_id, audience_id, AudienceNotFound, for_update=True)


def list_audiences_stmt(org_id: str) -> Select[Any]:
    return for_org(Audience, org_id).order_by(Audience.created_at.desc(), Audience.id)


def create_audience(
    session: Session,
    actor: Principal,
    *,
    name: str,
    description: str | None = None,
    slug: str | None = None,
) -> Audience:
    """An explicit slug that is taken is a 409; a derived one takes the next free numeric suffix
    (``slugs.add_with_derived_slug``)."""
    explicit = _validate_slug(slug) if slug is not None else None

    def make(chosen: str) -> Audience:
        return Audience(
            id=new_id("aud"),
            org_id=actor.org_id,
            name=name,
            slug=chosen,
            description=description,
            contact_count=0,
        )

    if explicit is None:
        base = slugify(name, "audience")
        audience = add_with_derived_slug(session, Audience, actor.org_id, base, make)
    else:
        taken = _slug_taken(explicit)
        audience = add_with_chosen_slug(
            session, Audience, actor.org_id, make(explicit), explicit, taken
        )
    record_event(
        session,
        actor,
        "audience.created",
        target_type="audience",
        target_id=audience.id,
        data={"name": audience.name, "slug": audience.slug},
    )
    return audience


def update_audience(
    session: Session, actor: Principal, audience_id: str, changes: dict[str, Any]
) -> Audience:
    """``changes`` holds only the fields the client sent. The slug never follows a renamed
    audience by itself: links and scripts that use it keep working until it is edited."""
    audience = get_audience(session, actor.org_id, audience_id)
    for field in ("name", "slug"):
        if field in changes and changes[field] is None:
            raise ValidationFailed(
                f"'{field}' cannot be null", details=[{"field": field, "message": "not null"}]
            )
    if "slug" in changes:
        changes = {**changes, "slug": _validate_slug(changes["slug"])}
    changed = {
        field: value for field, value in changes.items() if getattr(audience, field) != value
    }
    if not changed:
        return audience  # nothing changes: no new updatedAt, no audit noise
    if "slug" in changed and slug_in_use(
        session, Audience, actor.org_id, changed["slug"], exclude_id=audience.id
    ):
        raise _slug_taken(changed["slug"])
    for field, value in changed.items():
        setattr(audience, field, value)  # ``updated_at`` follows (``models._updated``)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise _slug_taken(audience.slug) from None
    record_event(
        session,
        actor,
        "audience.updated",
        target_type="audience",
        target_id=audience.id,
        data={"changed": sorted(changed)},
    )
    return audience


def delete_audience(session: Session, actor: Principal, audience_id: str) -> None:
    """Refused while a campaign still has messages to deliver to it. The audience row is locked
    first (PostgreSQL) so a send cannot slip in between the check and the delete."""
    audience = get_for_org(
        session, Audience, actor.org_id, audience_id, AudienceNotFound, for_update=True
    )
    active = session.scalars(
        select(Campaign.id)
        .where(
            org_filter(Campaign, actor.org_id),
            Campaign.audience_id == audience.id,
            Campaign.status.in_(ACTIVE_CAMPAIGN_STATUSES),
        )
        .limit(1)
    ).first()
    if active is not None:
        raise AudienceInUse(
            "This audience has a scheduled or in-progress campaign; cancel it or wait until it "
            "completes, then delete the audience.",
            details={"campaignId": active},
        )
    session.execute(delete(AudienceMember).where(AudienceMember.audience_id == audience.id))
    session.delete(audience)
    session.flush()
    record_event(
        session,
        actor,
        "audience.deleted",
        target_type="audience",
        target_id=audience.id,
        data={"name": audience.name, "slug": audience.slug},
    )


# --- members -----------------------------------------------------------------------------------


# The audience of a member list template (``contacts.service.ORG_ID`` is its organization).
AUDIENCE_ID = bindparam("audience_id", type_=String)


@lru_cache
def _members_template(shape: SearchShape) -> Select[Any]:
    stmt = (
        for_org(Contact, ORG_ID)
        .join(AudienceMember, AudienceMember.contact_id == Contact.id)
        .where(AudienceMember.audience_id == AUDIENCE_ID)
    )
    return newest_first(stmt, shape)


@lru_cache
def _available_template(shape: SearchShape) -> Select[Any]:
    """Contacts of the org that are not members (an anti-join on the membership primary key)."""
    is_member = exists().where(
        AudienceMember.audience_id == AUDIENCE_ID, AudienceMember.contact_id == Contact.id
    )
    return newest_first(for_org(Contact, ORG_ID).where(~is_member), shape)


def members_stmt(session: Session, audience: Audience, search: str | None) -> Prepared:
    """The audience's members, newest first, narrowed to ``search``."""
    return _for_audience(session, _members_template, audience, search)


def available_stmt(session: Session, audience: Audience, search: str | None) -> Prepared:
    """The organization's contacts that are not in the audience, newest first."""
    return _for_audience(session, _available_template, audience, search)


def _for_audience(
    session: Session,
    template: Callable[[SearchShape], Select[Any]],
    audience: Audience,
    search: str | None,
) -> Prepared:
    shape, values = search_values(session, search)
    return Prepared(
        template(shape), {"org_id": audience.org_id, "audience_id": audience.id, **values}
    )


def _checked_ids(contact_ids: list[str]) -> list[str]:
    if not contact_ids:
        raise ValidationFailed(
            "contactIds is empty; give at least one contact id.",
            details=[{"field": "contactIds", "message": "at least one id"}],
        )
    if len(contact_ids) > MAX_CONTACT_IDS:
        raise ValidationFailed(
            f"At most {MAX_CONTACT_IDS:,} contactIds per call ({len(contact_ids):,} given); "
            "split the list into several calls.",
            details=[{"field": "contactIds", "message": f"at most {MAX_CONTACT_IDS} ids"}],
        )
    return list(dict.fromkeys(contact_ids))


def _change_count(session: Session, audience: Audience, delta: int) -> None:
    """Applies the number of rows this transaction actually inserted or deleted as an atomic
    ``contact_count = contact_count + delta``. Concurrent changes cannot lose updates (each adds
    its own delta under the row lock) nor double count: on PostgreSQL a concurrent insert of the
    same membership waits on the primary key and then inserts nothing (delta 0), a concurrent
    delete of the same row deletes nothing; SQLite runs one writer at a time."""
    if delta:
        session.execute(
            update(Audience)
            .where(Audience.id == audience.id, org_filter(Audience, audience.org_id))
            .values(contact_count=Audience.contact_count + delta, updated_at=utcnow())
        )
    session.refresh(audience)


def add_members(session: Session, audience: Audience, contact_ids: Sequence[str]) -> int:
    """Makes the given contacts of the audience's org members; returns how many were new, with
    ``contact_count`` already updated. No cap and no 404: for callers that have checked the ids
    themselves (``add_contacts``; a CSV import with up to 10,000 rows it just upserted).

    One INSERT ... SELECT ... ON CONFLICT DO NOTHING: re-adding a member is a no-op, ids that are
    not contacts of the org select nothing, and RETURNING yields exactly the new members (the
    driver's rowcount is -1 for this statement on SQLite)."""
    if not contact_ids:
        return 0
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    rows = select(
        literal(audience.id, String()),
        Contact.id,
        literal(audience.org_id, String()),
        literal(utcnow(), UTCDateTime()),
    ).where(org_filter(Contact, audience.org_id), Contact.id.in_(contact_ids))
    stmt = (
        dialect_insert(AudienceMember)
        .from_select(["audience_id", "contact_id", "org_id", "created_at"], rows)
        .on_conflict_do_nothing()
        .returning(AudienceMember.contact_id)
    )
    added = len(session.scalars(stmt).all())
    _change_count(session, audience, added)
    return added


# Ids a 404 names: as many as an import's row errors.
NAMED_IDS = 100


def _named(missing: list[str]) -> dict[str, object]:
    """The first ``NAMED_IDS`` of ``missing`` and how many there are: 10,000 made-up ids made a
    404 of 129 KB that echoed them all."""
    return {"contactIds": missing[:NAMED_IDS], "count": len(missing)}


def add_contacts(
    session: Session, actor: Principal, audience_id: str, contact_ids: list[str]
) -> tuple[Audience, int]:
    """Adds contacts; returns the audience and how many were not members before. Any id that is
    not a contact of this org makes the whole call a 404 naming them, and nothing is added."""
    ids = _checked_ids(contact_ids)
    audience = _lock_audience(session, actor.org_id, audience_id)
    missing = _not_in_org(session, actor.org_id, ids)
    if missing:
        raise ContactsNotFound(
            f"{len(missing)} contact id(s) not found in your organization; nothing was added.",
            details=_named(missing),
        )
    try:
        with session.begin_nested():
            added = add_members(session, audience, ids)
    except IntegrityError:
        # A contact deleted while this call ran (its foreign-key check waited for the delete).
        gone = _not_in_org(session, actor.org_id, ids)
        if not gone:
            raise
        raise ContactsNotFound(
            f"{len(gone)} contact id(s) were deleted meanwhile; nothing was added.",
            details=_named(gone),
        ) from None
    record_event(
        session,
        actor,
        "audience.contacts_added",
        target_type="audience",
        target_id=audience.id,
        data={"requested": len(ids), "added": added},
    )
    return audience, added


def _not_in_org(session: Session, org_id: str, ids: list[str]) -> list[str]:
    """Which of ``ids`` name no contact of the organization, in their order (one query)."""
    found = contacts_in_org(session, org_id, ids)
    return [i for i in ids if i not in found]


def remove_contacts(
    session: Session, actor: Principal, audience_id: str, contact_ids: list[str]
) -> tuple[Audience, int]:
    """Removes members; ids that are not members (or not contacts of this org) are ignored, so a
    retried removal is harmless. Returns the audience and how many members were removed."""
    ids = _checked_ids(contact_ids)
    audience = _lock_audience(session, actor.org_id, audience_id)
    stmt = delete(AudienceMember).where(
        AudienceMember.audience_id == audience.id,
        org_filter(AudienceMember, actor.org_id),
        AudienceMember.contact_id.in_(ids),
    )
    removed = int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    _change_count(session, audience, -removed)
    record_event(
        session,
        actor,
        "audience.contacts_removed",
        target_type="audience",
        target_id=audience.id,
        data={"requested": len(ids), "removed": removed},
    )
    return audience, removed
