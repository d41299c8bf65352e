"""The organization's suppression list: addresses that never receive a send.

Addresses are normalised exactly like contacts' (``contacts.normalize``), so the send's join of
members against this list is a plain equality on one spelling of each address.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.contacts.normalize import InvalidAddress, normalize_address, suppression_key
from tidings.errors import NotFound, ValidationFailed
from tidings.ids import new_id
from tidings.models import Suppression
from tidings.tenancy import for_org, get_for_org


class SuppressionNotFound(NotFound):
    pass


class InvalidSuppressionAddress(ValidationFailed):
    code = "invalid_address"


def normalized(address: str) -> str:
    try:
        return suppression_key(normalize_address(address))
    except InvalidAddress as exc:
        raise InvalidSuppressionAddress(str(exc), details={"field": "address"}) from None


def find_suppression(session: Session, org_id: str, address: str) -> Suppression | None:
    stmt = for_org(Suppression, org_id).where(Suppression.address == address)
    return session.scalars(stmt).one_or_none()


def add_suppression(
    session: Session, actor: Principal, address: str, reason: str
) -> tuple[Suppression, bool]:
    """Returns the row and whether it is new. Adding a listed address again is not an error (the
    caller's intent, "never send here", already holds), and keeps the first row and reason."""
    address = normalized(address)
    existing = find_suppression(session, actor.org_id, address)
    if existing is not None:
        return existing, False
    row = Suppression(id=new_id("sup"), org_id=actor.org_id, address=address, reason=reason)
    try:
        # A savepoint: when a concurrent request listed the address first, the unique constraint
        # fires here and the answer is that request's row, not a 500.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raced = find_suppression(session, actor.org_id, address)
        if raced is None:
            raise
        return raced, False
    record_event(
        session,
        actor,
        "suppression.created",
        target_type="suppression",
        target_id=row.id,
        data={"address": address, "reason": reason},
    )
    return row, True


def list_suppressions_query(org_id: str, search: str | None, reason: str | None) -> Select[Any]:
    stmt = for_org(Suppression, org_id)
    if search:
        stmt = stmt.where(Suppression.address.icontains(search.strip(), autoescape=True))
    if reason:
        stmt = stmt.where(Suppression.reason == reason)
    return stmt.order_by(Suppression.created_at.desc(), Suppression.id.desc())


def get_suppression(session: Session, org_id: str, suppression_id: str) -> Suppression:
    """By id, or by address: an address in the path (``/suppressions/ann@example.com``, in any
    spelling) finds its entry, as it does in SendGrid's and Resend's APIs; ids start with
    ``sup_``, which no address does."""
    if suppression_id.startswith("sup_"):
        return get_for_org(session, Suppression, org_id, suppression_id, SuppressionNotFound)
    try:
        key = suppression_key(normalize_address(suppression_id))
    except InvalidAddress:
        key = None
    found = find_suppression(session, org_id, key) if key is not None else None
    if found is None:
        raise SuppressionNotFound(f"Suppression {suppression_id!r} not found.")
    return found


def remove_suppression(
    session: Session, actor: Principal, *, suppression_id: str | None, address: str | None
) -> None:
    """By id, or by address (normalised first, so any spelling of a listed address finds it)."""
    if suppression_id is not None:
        row = get_suppression(session, actor.org_id, suppression_id)
    elif address is not None:
        found = find_suppression(session, actor.org_id, normalized(address))
        if found is None:
            raise SuppressionNotFound(f"{address!r} is not on the suppression list")
        row = found
    else:
        raise ValidationFailed(
            "give the suppression's id or address in the path, ?address=..., or a JSON body "
            '{"address": ...}'
        )
    session.delete(row)
    session.flush()
    record_event(
        session,
        actor,
        "suppression.deleted",
        target_type="suppression",
        target_id=row.id,
        data={"address": row.address},
    )
