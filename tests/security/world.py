"""Two organizations with one of everything, and a fingerprint of every tenant table.

Org A is the caller; org B is the victim. B's rows are made through the API (as a user would) so
that campaigns and messages are real.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.campaigns.factories import make_suppression, make_template
from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.models import Base, Message


@dataclass
class World:
    headers: dict[str, str]  # org A, every scope
    their_headers: dict[str, str]  # org B, every scope
    mine: dict[str, str]
    theirs: dict[str, str]


def build_world(client: ApiClient, db: Session) -> World:
    a, b = make_org(db, "A"), make_org(db, "B")
    worlds: list[dict[str, str]] = []
    keys = []
    for org, tag in ((a, "mine"), (b, "theirs")):
        contact = make_contact(db, org, email=f"{tag}@example.com", name=tag.title())
        other = make_contact(db, org, email=f"{tag}-other@example.com")
        audience = make_audience(db, org, f"{tag} audience", members=[contact])
        template = make_template(db, org, slug=f"{tag}-news")
        suppression = make_suppression(db, org, f"{tag}-blocked@example.com")
        key = make_key(db, org)
        keys.append(key)
        sent = client.post(
            f"/v1/audiences/{audience.id}/send",
            headers=auth(key),
            json={
                "from": "hello@example.com",
                "template": template.slug,
                "scheduled_local": "2099-01-01 09:00",
                "scheduled_at_tz": "UTC",
            },
        )
        assert sent.status_code in (200, 201), sent.text
        campaign_id = sent.json()["campaign_id"]
        db.commit()
        message_id = db.scalar(select(Message.id).where(Message.campaign_id == campaign_id))
        assert message_id is not None
        worlds.append(
            {
                "org": org.id,
                "audience_id": audience.id,
                "contact_id": contact.id,
                "other_contact_id": other.id,
                "template_id": template.id,
                "template_slug": template.slug,
                "suppression_id": suppression.id,
                "suppression_address": suppression.address,
                "campaign_id": campaign_id,
                "message_id": message_id,
            }
        )
    return World(auth(keys[0]), auth(keys[1]), worlds[0], worlds[1])


def fingerprint(db: Session) -> dict[str, tuple[int, str]]:
    """Row count and a hash of every row of every table (idempotency records excluded: a replay
    cache, not tenant data)."""
    db.rollback()
    db.expire_all()
    result: dict[str, tuple[int, str]] = {}
    for table in Base.metadata.sorted_tables:
        if table.name == "idempotency_keys":
            continue
        rows = db.execute(select(table).order_by(*table.primary_key.columns)).all()
        digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
        count = db.scalar(select(func.count()).select_from(table)) or 0
        result[table.name] = (count, digest)
    return result


def changed_tables(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [name for name in before if before[name] != after[name]]
