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
# OFFSET is a signed 64-bit integer on both backends; an absurd page number never reaches SQL.
_MAX_WINDOWED_OFFSET = 2**62


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
    count_with_page: bool = False,
) -> Page[T]:
    """Run ``stmt`` (already ordered) for one page. ``total`` may be passed when it is known without
    counting (e.g. an audience's maintained ``contact_count``).

    ``count_with_page`` (for searches) reads the page and the total in one statement, with
    ``count(*) OVER ()``: a search's matches are found once instead of once for the count and
    again for the page, which halved a trigram search at a million contacts (``make bench``).
    Not for unfiltered lists: there the window would read the whole organization before the
    LIMIT, where the separate count is an index-only scan and the page an index range."""
    if total is None and count_with_page and params.offset <= _MAX_WINDOWED_OFFSET:
        found = session.execute(
            stmt.add_columns(func.count().over()).limit(params.limit).offset(params.offset)
        ).all()
        if found:  # an empty page (past the end, or no match) is counted below to tell which
            return _page([row[0] for row in found], int(found[0][1]), params, serialize)
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
    return _page(rows, total, params, serialize)


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
