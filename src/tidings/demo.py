"""``tidings demo``: a first run's data. Re-running reuses the demo organization and makes a new key
(a key's secret is shown only once, so the previous one cannot be printed again)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.audiences.service import add_contacts, create_audience
from tidings.auth import ALL_SCOPES, Principal, create_api_key
from tidings.contacts.service import create_contact
from tidings.db import session_scope
from tidings.models import Organization, User
from tidings.orgs import create_organization, create_user

DEMO_ORG_NAME = "Tidings Demo"
DEMO_OWNER = "owner@demo.tidings.dev"
DEMO_PASSWORD = "tidings-demo"

DEMO_CONTACTS = [
    ("alice@example.com", "+14155550101", "Alice Martin", {"city": "Mumbai", "plan": "premium"}),
    ("bob@example.com", None, "Bob Singh", {"city": "Mumbai", "plan": "basic"}),
    ("carol@example.com", "+442079460958", "Carol Jones", {"city": "London", "plan": "premium"}),
    ("dave@example.com", None, "Dave Kumar", {"city": "Delhi", "plan": "premium"}),
    (None, "+919820012345", "Esha Rao", {"city": "Mumbai", "plan": "premium"}),
]
DEMO_AUDIENCES = [
    (
        "Mumbai Premium - March 2026",
        "mumbai-premium-march-2026",
        "Hindi-speaking premium customers in Mumbai",
        [0, 4],
    ),
    ("All customers", "all-customers", "Everyone who signed up", [0, 1, 2, 3, 4]),
    ("Beta testers", "beta-testers", None, [2]),
]


@dataclass(frozen=True)
class DemoResult:
    org_id: str
    owner_email: str
    password: str
    api_key: str


def seed_demo() -> DemoResult:
    with session_scope() as session:
        org = session.scalars(
            select(Organization).where(Organization.name == DEMO_ORG_NAME)
        ).first()
        if org is None:
            org = create_organization(session, DEMO_ORG_NAME, "Asia/Kolkata")
            create_user(session, org.id, DEMO_OWNER, "owner", DEMO_PASSWORD)
            _seed_audiences(session, org.id)
        owner = session.scalars(select(User).where(User.org_id == org.id)).first()
        _, secret = create_api_key(session, org.id, frozenset(ALL_SCOPES), "demo")
        return DemoResult(
            org_id=org.id,
            owner_email=owner.email if owner else DEMO_OWNER,
            password=DEMO_PASSWORD,
            api_key=secret,
        )


def _seed_audiences(session: Session, org_id: str) -> None:
    """Through the same services as the API, so demo data obeys the same rules (normalised
    addresses, slugs, maintained counts, audit events)."""
    actor = Principal(org_id=org_id, actor_type="cli", actor_id=None)
    contact_ids = [
        create_contact(session, actor, email=email, phone=phone, name=name, metadata=metadata).id
        for email, phone, name, metadata in DEMO_CONTACTS
    ]
    for name, slug, description, members in DEMO_AUDIENCES:
        audience = create_audience(session, actor, name=name, description=description, slug=slug)
        add_contacts(session, actor, audience.id, [contact_ids[i] for i in members])
