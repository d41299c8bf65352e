"""The one place that scopes a query to an organization.

Every read of a tenant's row goes through ``for_org`` or ``get_for_org``. Another organization's id
is indistinguishable from an id that does not exist: both are the caller's ``NotFound``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import BindParameter, Select, select
from sqlalchemy.orm import Session

from tidings.errors import NotFound

M = TypeVar("M")


def for_org(model: type[M], org_id: str | BindParameter[str]) -> Select[M]:
    """``SELECT model WHERE org_id = :org_id``; add filters to it, never remove this one. ``org_id``
    may be a bind parameter, for a statement built once and run with each request's value."""
    return select(model).where(model.org_id == org_id)  # type: ignore[attr-defined]


def org_filter(model: Any, org_id: str) -> Any:
    """The bare condition, for Core statements (updates, counts, joins) on a tenant table."""
    return model.org_id == org_id


def get_for_org(
    session: Session,
    model: type[M],
    org_id: str,
    object_id: str,
    error: type[NotFound] = NotFound,
    *,
    for_update: bool = False,
) -> M:
    stmt = for_org(model, org_id).where(model.id == object_id)  # type: ignore[attr-defined]
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalars(stmt).one_or_none()
    if found is None:
        raise error(
            f"{error.__name__.removesuffix('NotFound') or 'Object'} {object_id!r} not found."
        )
    return found
