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


class PageParams(BaseModel):
    page: int = 1
    limit: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


def page_params(
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
    counting (e.g. an audience's maintained ``contact_count``)."""
    if total is None:
        total = (
            session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        )
    # A page past the end is empty without asking the database, which also keeps an absurd page
    # number from overflowing OFFSET (a 500 on both backends).
    rows: Sequence[Any] = (
        session.scalars(stmt.limit(params.limit).offset(params.offset)).all()
        if params.offset < total
        else []
    )
    return Page(
        data=[serialize(row) for row in rows],
        total=total,
        page=params.page,
        limit=params.limit,
        totalPages=math.ceil(total / params.limit),
    )
