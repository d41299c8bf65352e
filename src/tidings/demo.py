"""``tidings demo``: a first run's data. Re-running reuses the demo organization and makes a new key
(a key's secret is shown only once, so the previous one cannot be printed again)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from tidings.auth import ALL_SCOPES, create_api_key
from tidings.db import session_scope
from tidings.ids import new_id
from tidings.models import Audience, AudienceMember, Contact, Organization, User
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
            contacts = [
                Contact(
                    id=new_id("con"),
                    org_id=org.id,
                    email=email,
                    phone=phone,
                    name=name,
                    metadata_=metadata,
                )
                for email, phone, name, metadata in DEMO_CONTACTS
            ]
            session.add_all(contacts)
            session.flush()
            for name, slug, description, members in DEMO_AUDIENCES:
                audience = Audience(
                    id=new_id("aud"),
                    org_id=org.id,
                    name=name,
                    slug=slug,
                    description=description,
                    contact_count=len(members),
                )
                session.add(audience)
                session.flush()
                session.add_all(
                    AudienceMember(
                        audience_id=audience.id, contact_id=contacts[i].id, org_id=org.id
                    )
                    for i in members
                )
        owner = session.scalars(select(User).where(User.org_id == org.id)).first()
        _, secret = create_api_key(session, org.id, frozenset(ALL_SCOPES), "demo")
        return DemoResult(
            org_id=org.id,
            owner_email=owner.email if owner else DEMO_OWNER,
            password=DEMO_PASSWORD,
            api_key=secret,
        )
