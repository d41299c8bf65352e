"""Small factories for test data. Each commits, so the app (another session) sees the rows."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tidings.auth import ALL_SCOPES, create_api_key
from tidings.ids import new_id
from tidings.models import Audience, AudienceMember, Contact, Organization
from tidings.orgs import create_organization, create_user


class ApiClient(TestClient):
    """A TestClient that does not raise server errors, so tests see the 500 envelope as users do."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, raise_server_exceptions=False, **kwargs)


def make_org(db: Session, name: str = "Acme", timezone: str = "UTC") -> Organization:
    org = create_organization(db, name, timezone)
    db.commit()
    return org


def make_key(db: Session, org: Organization, scopes: tuple[str, ...] | str = ALL_SCOPES) -> str:
    """Returns an ``Authorization`` header dict's value: ``Bearer <secret>``."""
    scope_set = frozenset(scopes.split(",")) if isinstance(scopes, str) else frozenset(scopes)
    _, secret = create_api_key(db, org.id, scope_set)
    db.commit()
    return secret


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_user(
    db: Session,
    org: Organization,
    email: str,
    role: str = "owner",
    password: str = "correct horse battery",
) -> Any:
    user = create_user(db, org.id, email, role, password)
    db.commit()
    return user


def make_contact(
    db: Session,
    org: Organization,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Contact:
    contact = Contact(
        id=new_id("con"),
        org_id=org.id,
        email=email,
        phone=phone,
        name=name,
        metadata_=metadata or {},
    )
    db.add(contact)
    db.commit()
    return contact


def make_audience(
    db: Session,
    org: Organization,
    name: str = "Newsletter",
    members: list[Contact] | None = None,
    slug: str | None = None,
) -> Audience:
    audience = Audience(
        id=new_id("aud"),
        org_id=org.id,
        name=name,
        slug=slug or name.lower().replace(" ", "-") + "-" + new_id("aud")[4:10],
        contact_count=len(members or []),
    )
    db.add(audience)
    db.flush()
    for contact in members or []:
        db.add(AudienceMember(audience_id=audience.id, contact_id=contact.id, org_id=org.id))
    db.commit()
    return audience
