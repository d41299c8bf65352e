"""Slugs: per-organization, URL-safe names for audiences and templates, one rule for both."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Set
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.errors import Conflict
from tidings.tenancy import org_filter

T = TypeVar("T")

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The OpenAPI schema of a slug field (pydantic leaves the pattern out of an optional one's).
SLUG_SCHEMA: dict[str, Any] = {"pattern": SLUG_PATTERN.pattern}
SLUG_BASE_MAX = 80
# Creates of one name at the same instant, each taking one slug from the others' way.
MAX_SLUG_ATTEMPTS = 50


def slugify(name: str, fallback: str) -> str:
    """``"Mumbai Premium - March 2026"`` → ``mumbai-premium-march-2026``; accents are folded to
    ASCII, and a name with no letters or digits becomes ``fallback``."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    return slug[:SLUG_BASE_MAX].strip("-") or fallback


def free_slug(
    session: Session, model: Any, org_id: str, base: str, tried: Set[str] = frozenset()
) -> str:
    """``base``, or ``base-2``, ``base-3``…: the first one no row of the org has (one query) and
    not among ``tried``."""
    taken = set(
        session.scalars(
            select(model.slug).where(
                org_filter(model, org_id),
                (model.slug == base) | model.slug.startswith(f"{base}-", autoescape=True),
            )
        )
    )
    taken |= tried
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def add_with_chosen_slug(
    session: Session, model: type[T], org_id: str, row: T, slug: str, taken: Exception
) -> T:
    """Adds and flushes ``row``, whose ``slug`` the client chose; ``taken`` if a row of the
    organization has it, also one a concurrent create added between the check and the insert."""
    if slug_in_use(session, model, org_id, slug):
        raise taken
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise taken from None
    return row


def add_with_derived_slug(
    session: Session, model: type[T], org_id: str, base: str, make: Callable[[str], T]
) -> T:
    """Adds and flushes ``make(slug)`` with the first free slug derived from ``base``, so a
    derived slug never fails. A concurrent create can take that slug between the check and the
    insert; the next free one is tried then, never one tried before: twelve creates of one name
    at once (PostgreSQL) used to leave five with a 409 after five attempts each."""
    tried: set[str] = set()
    for _ in range(MAX_SLUG_ATTEMPTS):
        slug = free_slug(session, model, org_id, base, tried)
        row = make(slug)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except IntegrityError:
            if not slug_in_use(session, model, org_id, slug):
                raise  # another constraint than the slug's
            tried.add(slug)
    raise Conflict("Could not pick a free slug; retry the request.")


def slug_in_use(
    session: Session, model: Any, org_id: str, slug: str, exclude_id: str | None = None
) -> bool:
    stmt = select(model.id).where(org_filter(model, org_id), model.slug == slug)
    if exclude_id is not None:
        stmt = stmt.where(model.id != exclude_id)
    return session.scalars(stmt.limit(1)).first() is not None
