"""Factories for templates, suppressions and big audiences (the latter written with ``bulk_insert``,
as the product writes them, so a 10,000-member audience takes milliseconds to build)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.contacts.service import count_contacts
from tidings.db import bulk_insert
from tidings.ids import new_id
from tidings.models import (
    Audience,
    AudienceMember,
    Campaign,
    Contact,
    Message,
    Organization,
    Suppression,
    Template,
)
from tidings.timeutil import utcnow


def make_template(
    db: Session,
    org: Organization,
    *,
    slug: str = "weekly-newsletter",
    channel: str = "email",
    subject: str | None = "Weekly update for {{ name }}",
    html: str | None = "<p>Hello {{ name }}, {{ cta }}</p>",
    text: str | None = "Hello {{ name }}, {{ cta }}",
) -> Template:
    if channel == "sms":
        subject = html = None
    template = Template(
        id=new_id("tpl"),
        org_id=org.id,
        slug=slug,
        name=slug.replace("-", " ").title(),
        channel=channel,
        subject=subject,
        html=html,
        text=text,
    )
    db.add(template)
    db.commit()
    return template


def make_suppression(db: Session, org: Organization, address: str) -> Suppression:
    row = Suppression(id=new_id("sup"), org_id=org.id, address=address, reason="manual")
    db.add(row)
    db.commit()
    return row


def add_bulk_members(db: Session, org: Organization, audience: Audience, n: int) -> list[str]:
    """``n`` new email contacts added to ``audience``; returns their ids."""
    now = utcnow()
    ids = [new_id("con") for _ in range(n)]
    bulk_insert(
        db,
        Contact.__table__,  # type: ignore[arg-type]
        ("id", "org_id", "email", "phone", "name", "metadata", "created_at", "updated_at"),
        ((cid, org.id, f"{cid}@example.com", None, None, {}, now, now) for cid in ids),
    )
    bulk_insert(
        db,
        AudienceMember.__table__,  # type: ignore[arg-type]
        ("audience_id", "contact_id", "org_id", "created_at"),
        ((audience.id, cid, org.id, now) for cid in ids),
    )
    audience.contact_count += n
    db.add(audience)
    count_contacts(db, org.id, n)
    db.commit()
    return ids


def count(db: Session, model: type[Campaign] | type[Message]) -> int:
    db.commit()  # a fresh snapshot: the app wrote in another session
    return db.scalar(select(func.count()).select_from(model)) or 0
