"""Small factories for test data. Each commits, so the app (another session) sees the rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tidings.auth import ALL_SCOPES, create_api_key
from tidings.contacts.service import count_contacts
from tidings.ids import new_id
from tidings.models import Audience, AudienceMember, Campaign, Contact, Message, Organization
from tidings.orgs import create_organization, create_user
from tidings.timeutil import utcnow


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
    db.flush()
    count_contacts(db, org.id, 1)
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


def make_campaign(
    db: Session,
    org: Organization,
    audience: Audience,
    recipients: list[Contact],
    *,
    channel: str = "email",
    subject: str | None = "Hello {{ name }}",
    text: str | None = "Hi {{ name }}, unsubscribe: {{ unsubscribe_url }}",
    html: str | None = "<p>Hi {{ name }}</p>",
    subject_variants: list[str] | None = None,
    variables: dict[str, Any] | None = None,
    from_address: str | None = "news@acme.test",
    status: str = "scheduled",
    starts_at: datetime | None = None,
    ramp_seconds: float = 0.0,
) -> tuple[Campaign, list[Message]]:
    """A campaign and its scheduled messages written directly, as the send endpoint would: message
    *i* of *n* at ``starts_at + ramp * i / n``; variant letters by position when variants exist."""
    starts_at = starts_at or utcnow()
    n = len(recipients)
    campaign = Campaign(
        id=new_id("cmp"),
        org_id=org.id,
        audience_id=audience.id,
        channel=channel,
        from_address=from_address,
        status=status,
        template_subject=subject,
        template_html=html,
        template_text=text,
        subject_variants=subject_variants,
        variables=variables or {},
        ramp_minutes=round(ramp_seconds / 60),
        starts_at=starts_at,
        ends_at=starts_at + timedelta(seconds=ramp_seconds),
        total=n,
        scheduled=n,
    )
    db.add(campaign)
    db.flush()
    messages = []
    for i, contact in enumerate(recipients):
        address = contact.email if channel == "email" else contact.phone
        assert address is not None
        metadata = {}
        if subject_variants:
            metadata["subject_variant"] = chr(ord("A") + i % len(subject_variants))
        message = Message(
            id=new_id("msg"),
            org_id=org.id,
            campaign_id=campaign.id,
            contact_id=contact.id,
            channel=channel,
            to_address=address,
            status="scheduled",
            scheduled_at=starts_at + timedelta(seconds=ramp_seconds * i / max(n, 1)),
            metadata_=metadata,
        )
        db.add(message)
        messages.append(message)
    db.commit()
    return campaign, messages
