"""Slugs: per-organization, URL-safe names for audiences and templates, one rule for both."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.tenancy import org_filter

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The OpenAPI schema of a slug field (pydantic leaves the pattern out of an optional one's).
SLUG_SCHEMA: dict[str, Any] = {"pattern": SLUG_PATTERN.pattern}
SLUG_BASE_MAX = 80


def slugify(name: str, fallback: str) -> str:
    """``"Mumbai Premium - March 2026"`` → ``mumbai-premium-march-2026``; accents are folded to
    ASCII, and a name with no letters or digits becomes ``fallback``."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:SLUG_BASE_MAX].strip("-") or fallback


def free_slug(session: Session, model: Any, org_id: str, base: str) -> str:
    """``base``, or ``base-2``, ``base-3``…: the first one no row of the org has (one query), so a
    derived slug never fails."""
    taken = set(
        session.scalars(
            select(model.slug).where(
                org_filter(model, org_id),
                (model.slug == base) | model.slug.startswith(f"{base}-", autoescape=True),
            )
        )
    )
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def slug_in_use(
    session: Session, model: Any, org_id: str, slug: str, exclude_id: str | None = None
) -> bool:
    stmt = select(model.id).where(org_filter(model, org_id), model.slug == slug)
    if exclude_id is not None:
        stmt = stmt.where(model.id != exclude_id)
    return session.scalars(stmt.limit(1)).first() is not None
