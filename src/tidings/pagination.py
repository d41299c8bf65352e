"""The one pagination helper: ``page``/``limit`` in, ``{data, total, page, limit, totalPages}`` out.

Out-of-range values are a 400 (through the validation handler), never silently clamped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cached_property, lru_cache
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, BeforeValidator
from sqlalchemy import BigInteger, Select, bindparam, func, select
from sqlalchemy.orm import Session

from tidings.db import Prepared

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


def _whole_number(value: object) -> object:
    """Digits only: ``1_0``, ``2.0``, ``+1`` and `` 2 `` are not page numbers, whatever
    ``int()`` makes of them (``1_0`` was read as 10)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number such as 2")
    return value


async def page_params(
    page: Annotated[
        int, BeforeValidator(_whole_number), Query(ge=1, description="Page number (default: 1)")
    ] = 1,
    limit: Annotated[
        int,
        BeforeValidator(_whole_number),
        Query(ge=1, le=MAX_LIMIT, description="Items per page (default: 20, max: 100)"),
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
    stmt: Select[Any] | Prepared,
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
    if isinstance(stmt, Prepared):
        windows, values = _prepared_windows(stmt.stmt), dict(stmt.values)
    else:
        windows, values = _Windows(stmt), {}
    offset = params.offset
    if offset > MAX_OFFSET or (total is not None and offset >= total):
        # A page past the end is empty without asking; an absurd page number would also overflow
        # OFFSET (a 500 on both backends).
        if total is None:
            total = session.scalar(windows.counting, values) or 0
        return _page([], total, params, serialize)
    values.update(page_limit=params.limit, page_offset=offset)
    if total is not None:
        rows = session.scalars(windows.page, values).all()
        return _page(rows, total, params, serialize)
    pairs = session.execute(windows.counted_page, values).all()
    if pairs:
        return _page([row for row, _ in pairs], pairs[0][1], params, serialize)
    if offset:  # past the last page: no row carries the total
        total = session.scalar(windows.counting, values) or 0
    return _page([], total or 0, params, serialize)


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


# A page's size and start, bound per request.
_LIMIT = bindparam("page_limit", type_=BigInteger)
_OFFSET = bindparam("page_offset", type_=BigInteger)


class _Windows:
    """What ``paginate`` runs for ``stmt``, each built when first needed: the page, the page with
    the total on every row, and the total alone."""

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt

    @cached_property
    def counting(self) -> Select[int]:
        return select(func.count()).select_from(self.stmt.order_by(None).subquery())

    @cached_property
    def page(self) -> Select[Any]:
        return self.stmt.limit(_LIMIT).offset(_OFFSET)

    @cached_property
    def counted_page(self) -> Select[Any]:
        counted = self.stmt.add_columns(self.counting.scalar_subquery())
        return counted.limit(_LIMIT).offset(_OFFSET)


@lru_cache(maxsize=64)
def _prepared_windows(stmt: Select[Any]) -> _Windows:
    """The windows of a ``Prepared`` statement, kept: its template lives as long as the process
    (cached by identity), so each is built once, not per request."""
    return _Windows(stmt)
