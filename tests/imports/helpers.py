"""Shared arrangements for import tests: an org, an audience and a key allowed to import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_key, make_org
from tidings.models import Audience, AudienceMember, Contact, Organization

IMPORT_SCOPES = ("write:audiences", "write:contacts")


@dataclass
class Setup:
    org: Organization
    audience: Audience
    headers: dict[str, str]


def setup_import(db: Session, scopes: tuple[str, ...] = IMPORT_SCOPES) -> Setup:
    org = make_org(db)
    audience = make_audience(db, org)
    return Setup(org, audience, auth(make_key(db, org, scopes)))


def post_csv(
    client: ApiClient,
    setup: Setup,
    body: bytes | str,
    *,
    content_type: str = "text/csv",
    path: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return client.post(
        path or f"/v1/audiences/{setup.audience.id}/import",
        content=content,
        headers={**setup.headers, "Content-Type": content_type, **(headers or {})},
    )


def all_contacts(db: Session, org: Organization) -> list[Contact]:
    db.expire_all()
    return list(db.scalars(select(Contact).where(Contact.org_id == org.id)))


def contacts_by_email(db: Session, org: Organization) -> dict[str | None, Contact]:
    return {c.email: c for c in all_contacts(db, org)}


def member_ids(db: Session, audience: Audience) -> set[str]:
    return set(
        db.scalars(
            select(AudienceMember.contact_id).where(AudienceMember.audience_id == audience.id)
        )
    )


def stored_count(db: Session, audience: Audience) -> int:
    db.expire_all()
    return db.get(Audience, audience.id).contact_count  # type: ignore[union-attr]


def counts(body: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return body["received"], body["created"], body["updated"], body["added"], body["invalid"]
