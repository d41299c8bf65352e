"""Contacts: the rules (normalised addresses, one contact per address per organization), no HTTP.

Every read goes through ``tenancy``; writes only ``flush()`` — the caller owns the transaction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.contacts import trigrams
from tidings.contacts.normalize import (
    InvalidAddress,
    InvalidName,
    normalize_email,
    normalize_name,
    normalize_phone,
)
from tidings.db import Prepared, is_postgres
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.ids import new_id
from tidings.models import (
    SEARCH_SEPARATOR,
    Audience,
    AudienceMember,
    Contact,
    Message,
    Organization,
    contact_search_text,
)
from tidings.tenancy import for_org, get_for_org, org_filter
from tidings.timeutil import utcnow


class ContactNotFound(NotFound):
    pass


class ContactExists(Conflict):
    code = "contact_exists"


# The request values of the contact list templates (``Prepared`` statements built once).
ORG_ID = bindparam("org_id", type_=String)
SEARCH_PATTERN = bindparam("search_pattern", type_=String)
LEAD_PATTERN = bindparam("lead_pattern", type_=String)
DIALLED_PATTERN = bindparam("dialled_pattern", type_=String)


class SearchMatch(Enum):
    """How a list matches its ``search`` term (one template per way)."""

    NONE = "none"  # no term: every contact
    JOINED = "joined"  # name, email and phone as one text
    BY_FIELD = "by_field"  # a term holding the separator: the joined text's candidates, by field


@dataclass(frozen=True)
class SearchShape:
    """Which template a contact list runs: how it matches the term, whether a rarer piece of
    the term (``LEAD_PATTERN``, ``trigrams.lead``) is matched first, and whether the term's
    digits (``DIALLED_PATTERN``, ``dialled_form``) are matched too."""

    how: SearchMatch
    led: bool = False
    dialled: bool = False


UNSEARCHED = SearchShape(SearchMatch.NONE)


def narrows(term: str | None) -> bool:
    """Whether ``search`` narrows a contact list: a blank term lists every contact, so such a
    list's total is a maintained count rather than a count of its matches."""
    return bool((term or "").strip())


def search_values(session: Session, term: str | None) -> tuple[SearchShape, dict[str, str]]:
    """How ``term`` is matched and the values of ``SEARCH_PATTERN`` (a case-insensitive
    substring of name, email or phone), of ``DIALLED_PATTERN`` for a term written like a phone
    number and, on PostgreSQL, of ``LEAD_PATTERN`` when a piece of the term is rarer than the
    whole. LIKE wildcards in the term are escaped so ``50%`` searches for the text, not a
    pattern."""
    if not narrows(term):
        return UNSEARCHED, {}
    term = unicodedata.normalize("NFC", (term or "").strip())
    how = SearchMatch.BY_FIELD if SEARCH_SEPARATOR in term else SearchMatch.JOINED
    values = {"search_pattern": substring_pattern(term)}
    dialled = dialled_form(term)
    if dialled is not None:
        values["dialled_pattern"] = substring_pattern(dialled)
    piece = trigrams.lead(term, trigrams.shares(session)) if is_postgres(session) else None
    if piece is not None:
        values["lead_pattern"] = substring_pattern(piece)
    return SearchShape(how, led=piece is not None, dialled=dialled is not None), values


# A term written the way people write phone numbers: digits and the punctuation they put
# between them (and at least three digits: ``dialled_form``).
_TYPED_PHONE = re.compile(r"\+?[0-9 ().-]+")
# The fewest digits of a number dialled with a trunk or international prefix (``dialled_form``):
# national numbers run from about 7 digits (small countries) to 12.
MIN_NATIONAL_DIGITS = 7


def dialled_form(term: str) -> str | None:
    """Phones are stored in E.164 (``+14155550123``), so a term like ``(415) 555-0123`` or
    ``+1 415 555 0123`` also matches as ``4155550123`` or ``+14155550123``: its digits, after
    a leading ``+``. A whole number dialled from inside its country (``020 7946 0958``) or
    with an international prefix (``00 44 20 7946 0958``) matches without its leading zeros,
    as E.164 writes it. None for any other term, and for one already in that form."""
    digits = "".join(c for c in term if c in "0123456789")
    if len(digits) < 3 or not _TYPED_PHONE.fullmatch(term):
        return None
    if term.startswith("+"):
        dialled = "+" + digits
    elif len(digits.lstrip("0")) >= MIN_NATIONAL_DIGITS:
        # Only for a whole number: ``0958``, the end of one, must not match every ``958``.
        dialled = digits.lstrip("0")
    else:
        dialled = digits
    return dialled if dialled != term else None


def substring_pattern(term: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching ``term`` anywhere, its own ``%``, ``_``
    and backslashes matched as themselves."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_filter(shape: SearchShape) -> ColumnElement[bool] | None:
    """The condition of ``SEARCH_PATTERN``; ``None`` for ``SearchMatch.NONE``.

    The three fields are matched as one text (``models.contact_search_text``, which PostgreSQL's
    trigram index covers). Only a term holding the separator could match across two fields
    there; for such a term the joined text's matches are only candidates, kept if one field
    matches on its own.

    A led search matches ``LEAD_PATTERN`` first: PostgreSQL looks up the index conditions in
    the order written, and the lead's uncommon trigrams leave few candidates for the whole
    term's common ones (``trigrams``).

    A dialled search also keeps what ``DIALLED_PATTERN`` matches: digits alone cannot span the
    separator, so the joined text (and its index) serves for them too.
    """
    if shape.how is SearchMatch.NONE:
        return None
    joined_text = contact_search_text(Contact)
    conditions = [_contains(joined_text, LEAD_PATTERN)] if shape.led else []
    conditions.append(_contains(joined_text, SEARCH_PATTERN))
    if shape.how is SearchMatch.BY_FIELD:
        fields = (Contact.name, Contact.email, Contact.phone)
        conditions.append(or_(*(_contains(field, SEARCH_PATTERN) for field in fields)))
    as_typed = and_(*conditions)
    return or_(as_typed, _contains(joined_text, DIALLED_PATTERN)) if shape.dialled else as_typed


def _contains(
    text: ColumnElement[Any] | InstrumentedAttribute[Any], pattern: BindParameter[str]
) -> ColumnElement[bool]:
    """``text`` matches the ``substring_pattern`` bound to ``pattern``, in any case."""
    return text.ilike(pattern, escape="\\")


def _composed_name(raw: str | None) -> str | None:
    try:
        return normalize_name(raw)
    except InvalidName as exc:
        raise ValidationFailed(
            str(exc), details=[{"field": "name", "message": "too long"}]
        ) from None


def _normalized(field: str, raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    try:
        return normalize_email(raw) if field == "email" else normalize_phone(raw)
    except InvalidAddress as exc:
        raise ValidationFailed(str(exc), details=[{"field": field, "message": str(exc)}]) from None


def _require_address(email: str | None, phone: str | None) -> None:
    if email is None and phone is None:
        raise ValidationFailed(
            "A contact needs an email or a phone (or both).",
            details=[{"field": "email", "message": "email or phone is required"}],
        )


def _check_unique(
    session: Session, org_id: str, email: str | None, phone: str | None, exclude: str | None
) -> None:
    """Names the clash (which field, which contact) so the client can update instead."""
    for field, column, value in (("email", Contact.email, email), ("phone", Contact.phone, phone)):
        if value is None:
            continue
        stmt = for_org(Contact, org_id).where(column == value)
        if exclude is not None:
            stmt = stmt.where(Contact.id != exclude)
        existing = session.scalars(stmt.limit(1)).first()
        if existing is not None:
            raise ContactExists(
                f"A contact with {field} {value!r} exists already ({existing.id}).",
                details={"field": field, "value": value, "contactId": existing.id},
            )


def _flush_unique(session: Session) -> None:
    """A concurrent insert of the same address passes the pre-check; the unique constraint then
    decides, and the loser gets the same 409 instead of a 500."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise ContactExists("A contact with this email or phone exists already.") from None


def newest_first(stmt: Select[Any], shape: SearchShape) -> Select[Any]:
    """``stmt`` (an organization's contacts, perhaps joined to a membership), narrowed to
    ``SEARCH_PATTERN`` as ``shape`` says and ordered newest first: the one shape of every contact
    list.

    With a term, every match is collected first (a MATERIALIZED CTE, found through the trigram
    index on PostgreSQL) and only those are sorted. Left to choose, PostgreSQL would walk
    ``ix_contacts_org_id_created_at`` and filter, betting on its estimate of how many contacts
    match; an ILIKE estimate is often off a hundredfold, and where the matches are few, old, or
    (for an audience) rarely members, that walk reads the whole organization: at a million
    contacts (``bench/listing.py``'s fixture) an audience search for a name with 111 matches and
    no member took 1.0 s, now 5 ms. Collecting first costs a broad term (a tenth of the
    organization) a sort of its matches, which its exact ``total`` has to read anyway.
    """
    condition = search_filter(shape)
    if condition is None:
        return stmt.order_by(Contact.created_at.desc(), Contact.id)
    matches = stmt.where(condition).cte("matches").prefix_with("MATERIALIZED")
    contact = aliased(Contact, matches)
    return select(contact).order_by(contact.created_at.desc(), contact.id)


@lru_cache
def _contacts_template(shape: SearchShape) -> Select[Any]:
    return newest_first(for_org(Contact, ORG_ID), shape)


def list_contacts_stmt(session: Session, org_id: str, search: str | None) -> Prepared:
    """The organization's contacts, newest first, narrowed to ``search``."""
    shape, values = search_values(session, search)
    return Prepared(_contacts_template(shape), {"org_id": org_id, **values})


def contacts_total(session: Session, org_id: str) -> int:
    """The organization's number of contacts, as maintained (``count_contacts``): the total of
    an unsearched list, read instead of counting a million rows."""
    stmt = select(Organization.contact_count).where(Organization.id == org_id)
    return int(session.scalar(stmt) or 0)


def count_contacts(session: Session, org_id: str, delta: int) -> None:
    """``organizations.contact_count += delta`` in the database, by every writer that creates or
    deletes contacts, in its transaction. Called after the contacts are written: the organization
    row stays locked only until the commit, and a writer never holds it while its insert waits
    on another's (an address both are adding), so no two writers can deadlock on it."""
    if delta:
        session.execute(
            update(Organization)
            .where(Organization.id == org_id)
            .values(contact_count=Organization.contact_count + delta)
            .execution_options(synchronize_session=False)
        )


def get_contact(session: Session, org_id: str, contact_id: str) -> Contact:
    return get_for_org(session, Contact, org_id, contact_id, ContactNotFound)


def create_contact(
    session: Session,
    actor: Principal,
    *,
    email: str | None,
    phone: str | None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Contact:
    """A new contact of the actor's organization. Its audit events name it by id, never by its
    email or phone: ``read:audit`` does not imply ``read:contacts``, and a deleted contact's
    address must not outlive it in the log."""
    org_id = actor.org_id
    email, phone = _normalized("email", email), _normalized("phone", phone)
    _require_address(email, phone)
    _check_unique(session, org_id, email, phone, exclude=None)
    contact = Contact(
        id=new_id("con"),
        org_id=org_id,
        email=email,
        phone=phone,
        name=_composed_name(name),
        metadata_=metadata or {},
    )
    session.add(contact)
    _flush_unique(session)
    count_contacts(session, org_id, 1)
    record_event(
        session,
        actor,
        "contact.created",
        target_type="contact",
        target_id=contact.id,
    )
    return contact


def update_contact(
    session: Session, actor: Principal, contact_id: str, changes: dict[str, Any]
) -> Contact:
    """``changes`` holds only the fields the client sent; ``None`` clears a field. The audit
    event names the fields sent, not their values (see ``create_contact``)."""
    org_id = actor.org_id
    contact = get_contact(session, org_id, contact_id)
    email = _normalized("email", changes["email"]) if "email" in changes else contact.email
    phone = _normalized("phone", changes["phone"]) if "phone" in changes else contact.phone
    _require_address(email, phone)
    _check_unique(
        session,
        org_id,
        email if email != contact.email else None,
        phone if phone != contact.phone else None,
        exclude=contact.id,
    )
    contact.email, contact.phone = email, phone
    if "name" in changes:
        contact.name = _composed_name(changes["name"])
    if "metadata" in changes:
        contact.metadata_ = changes["metadata"] or {}
    # ``updated_at`` moves only if a value did: the flush writes (and stamps) changed rows only.
    _flush_unique(session)
    if changes:
        record_event(
            session,
            actor,
            "contact.updated",
            target_type="contact",
            target_id=contact.id,
            data={"fields": sorted(changes)},
        )
    return contact


def delete_contact(session: Session, actor: Principal, contact_id: str) -> None:
    """Removes the contact, its memberships, and one from each of its audiences' counts.

    The memberships are deleted with RETURNING, and only the audiences whose row this statement
    actually deleted are decremented (one set-based UPDATE): a concurrent removal of the same
    membership deletes nothing here, so no count is decremented twice.

    The contact row is locked before its memberships are read (PostgreSQL). A request adding it
    to an audience meanwhile either finished first, and its membership is deleted and counted
    here, or waits and then fails its foreign-key check (``audiences.service.add_contacts``: a
    404). Without the lock, such a membership was removed by the row's cascade and its
    audience's count stayed one too high. A second delete of the same contact waiting on the
    lock finds it gone: a 404, so the organization's count drops once.
    """
    contact = get_contact(session, actor.org_id, contact_id)
    # The contact's audiences are locked first, in id order: the lock order of every other
    # membership change (audience row, then contacts), so a deletion cannot deadlock with them.
    session.execute(
        select(Audience.id)
        .join(AudienceMember, AudienceMember.audience_id == Audience.id)
        .where(AudienceMember.contact_id == contact.id, org_filter(Audience, actor.org_id))
        .order_by(Audience.id)
        .with_for_update(of=Audience)
    ).all()
    still_there = session.execute(
        select(Contact.id)
        .where(Contact.id == contact.id, org_filter(Contact, actor.org_id))
        .with_for_update()
    ).first()
    if still_there is None:  # a concurrent delete of the same contact committed first
        raise ContactNotFound(f"Contact {contact_id!r} not found.")
    audience_ids = list(
        session.scalars(
            delete(AudienceMember)
            .where(
                AudienceMember.contact_id == contact.id,
                org_filter(AudienceMember, actor.org_id),
            )
            .returning(AudienceMember.audience_id)
        )
    )
    if audience_ids:
        session.execute(
            update(Audience)
            .where(Audience.id.in_(audience_ids), org_filter(Audience, actor.org_id))
            .values(contact_count=Audience.contact_count - 1, updated_at=utcnow())
        )
    session.delete(contact)
    session.flush()
    count_contacts(session, actor.org_id, -1)
    cancelled = _cancel_scheduled_messages(session, actor.org_id, contact.id)
    record_event(
        session,
        actor,
        "contact.deleted",
        target_type="contact",
        target_id=contact.id,
        data={"audiences": audience_ids, "cancelled_messages": cancelled},
    )


def _cancel_scheduled_messages(session: Session, org_id: str, contact_id: str) -> int:
    """A deleted contact's messages not yet handed to a worker are ``cancelled`` now, so the
    messages list and the campaigns' counts say so at once rather than when a worker reaches
    them (which would cancel them too: ``delivery.compose``). A message being sent finishes."""
    result = session.execute(
        update(Message)
        .where(
            org_filter(Message, org_id),
            Message.contact_id == contact_id,
            Message.status == "scheduled",
        )
        .values(status="cancelled", error="the contact was deleted", updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def contacts_in_org(session: Session, org_id: str, contact_ids: list[str]) -> set[str]:
    """Which of ``contact_ids`` are contacts of this organization (one query)."""
    if not contact_ids:
        return set()
    stmt = select(Contact.id).where(org_filter(Contact, org_id), Contact.id.in_(contact_ids))
    return set(session.scalars(stmt))
