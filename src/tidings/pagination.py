"""The one pagination helper: ``page``/``limit`` in, ``{data, total, page, limit, totalPages}`` out.

Out-of-range values are a 400 (through the validation handler), never silently clamped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")
Row = TypeVar("Row")

MAX_LIMIT = 100
MAX_OFFSET = 2**62  # below the 64-bit OFFSET both backends accept


class PageParams(BaseModel):
    page: int = 1
    limit: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


async def page_params(
    page: Annotated[int, Query(ge=1, description="Page number (default: 1)")] = 1,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="Items per page (default: 20, max: 100)")
    ] = 20,
) -> PageParams:
    return PageParams(page=page, limit=limit)


class Page(BaseModel, Generic[T]):
    data: list[T]
    total: int
    page: int
    limit: int
    totalPages: int


def paginate(
    session: Session,
    stmt: Select[Any],
    params: PageParams,
    serialize: Callable[[Any], T],
    *,
    total: int | None = None,
) -> Page[T]:
    """Run ``stmt`` (already ordered) for one page. ``total`` may be passed when it is known without
    counting (e.g. an audience's maintained ``contact_count``).

    Otherwise the page and its total come from one statement (the count as an uncorrelated scalar
    subquery, which both backends evaluate once): one round trip, and a search's materialized
    matches (``contacts.service.newest_first``) are found once for both.
    """
    offset = params.offset
    if offset > MAX_OFFSET or (total is not None and offset >= total):
        # A page past the end is empty without asking; an absurd page number would also overflow
        # OFFSET (a 500 on both backends).
        return _page([], total if total is not None else _count(session, stmt), params, serialize)
    if total is not None:
        rows = session.scalars(stmt.limit(params.limit).offset(offset)).all()
        return _page(rows, total, params, serialize)
    counted = _counting(stmt).scalar_subquery()
    pairs = session.execute(stmt.add_columns(counted).limit(params.limit).offset(offset)).all()
    if pairs:
        return _page([row for row, _ in pairs], pairs[0][1], params, serialize)
    return _page([], 0 if offset == 0 else _count(session, stmt), params, serialize)


def _page(
    rows: Sequence[Any], total: int, params: PageParams, serialize: Callable[[Any], T]
) -> Page[T]:
    return Page(
        data=[serialize(row) for row in rows],
        total=total,
        page=params.page,
        limit=params.limit,
        totalPages=math.ceil(total / params.limit),
    )


def _count(session: Session, stmt: Select[Any]) -> int:
    """How many rows ``stmt`` returns (for a page past the end, which has no row to carry it)."""
    return session.scalar(_counting(stmt)) or 0


def _counting(stmt: Select[Any]) -> Select[int]:
    return select(func.count()).select_from(stmt.order_by(None).subquery())
