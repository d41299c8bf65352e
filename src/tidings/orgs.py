"""Organizations and dashboard users: created from the CLI (and the demo), not over the API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.auth import MAX_NAME_LENGTH, ROLES, hash_password, user_by_email
from tidings.contacts.normalize import InvalidAddress, normalize_email
from tidings.errors import BadRequest, Conflict, NotFound
from tidings.ids import new_id
from tidings.models import Organization, User
from tidings.timeutil import iana_zone


def validate_timezone(name: str) -> str:
    try:
        iana_zone(name)
    except ValueError:
        raise BadRequest(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'"
        ) from None
    return name


def create_organization(session: Session, name: str, timezone: str = "UTC") -> Organization:
    if not name.strip():
        raise BadRequest("organization name is empty")
    if len(name.strip()) > MAX_NAME_LENGTH:
        raise BadRequest(f"organization name is longer than {MAX_NAME_LENGTH} characters")
    org = Organization(id=new_id("org"), name=name.strip(), timezone=validate_timezone(timezone))
    session.add(org)
    session.flush()
    return org


def get_organization(session: Session, org_id: str) -> Organization:
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound(f"organization {org_id!r} not found")
    return org


def list_organizations(session: Session) -> list[Organization]:
    """Every organization, oldest first: the CLI's way back to an id ``orgs create`` printed once
    (names need not be unique)."""
    return list(session.scalars(select(Organization).order_by(Organization.created_at)))


def create_user(session: Session, org_id: str, email: str, role: str, password: str) -> User:
    get_organization(session, org_id)
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}")
    # Spaces count inside a passphrase, but eight of them alone are no password.
    if len(password) < 8 or not password.strip():
        raise BadRequest("password must be at least 8 characters, not only spaces")
    try:
        email = normalize_email(email)
    except InvalidAddress as exc:
        raise BadRequest(str(exc)) from None
    existing = user_by_email(session, email)
    if existing is not None:
        raise Conflict(f"a user with email {existing.email!r} exists already")
    user = User(
        id=new_id("usr"),
        org_id=org_id,
        email=email,
        role=role,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    return user
