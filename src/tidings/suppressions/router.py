"""HTTP for the suppression list: parse, call one service function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tidings.auth import Principal
from tidings.contacts.schemas import SuccessOut, Text
from tidings.deps import DbSession, require_scope
from tidings.errors import error_responses
from tidings.models import Suppression
from tidings.pagination import Page, PageParams, page_params, paginate
from tidings.suppressions import service
from tidings.suppressions.schemas import (
    Reason,
    SuppressionAddress,
    SuppressionCreate,
    SuppressionOut,
)
from tidings.timeutil import isoformat_z

router = APIRouter(tags=["suppressions"])

Reader = Annotated[Principal, Depends(require_scope("read:suppressions"))]
Writer = Annotated[Principal, Depends(require_scope("write:suppressions"))]


def suppression_out(row: Suppression) -> SuppressionOut:
    return SuppressionOut(
        id=row.id,
        address=row.address,
        reason=row.reason,
        createdAt=isoformat_z(row.created_at),
    )


@router.get("/suppressions", responses=error_responses(400, 401, 403))
def list_suppressions(
    session: DbSession,
    principal: Reader,
    params: Annotated[PageParams, Depends(page_params)],
    search: Annotated[Text | None, Query(description="Part of an address")] = None,
    reason: Reason | None = None,
) -> Page[SuppressionOut]:
    stmt = service.list_suppressions_query(principal.org_id, search, reason)
    return paginate(session, stmt, params, suppression_out)


@router.post(
    "/suppressions",
    status_code=201,
    responses={
        200: {
            "model": SuppressionOut,
            "description": "The address was listed already: the existing entry, unchanged.",
        },
        **error_responses(400, 401, 403),
    },
    description="Adds an address (email, or phone with country code; normalised like contacts). "
    "201 with the new entry; 200 with the existing entry when the address is listed already. "
    "An invalid address is a 400.",
)
def add_suppression(
    session: DbSession, principal: Writer, body: SuppressionCreate, response: Response
) -> SuppressionOut:
    row, created = service.add_suppression(session, principal, body.address, body.reason)
    if not created:
        response.status_code = 200
    return suppression_out(row)


@router.delete(
    "/suppressions",
    responses=error_responses(400, 401, 403, 404),
    description="Removes the entry for an address (any spelling of it), given as `?address=` or "
    'as a JSON body `{"address": ...}`.',
)
def remove_suppression_by_address(
    session: DbSession,
    principal: Writer,
    address: Annotated[
        Text | None, Query(min_length=1, description="The address to remove")
    ] = None,
    body: SuppressionAddress | None = None,
) -> SuccessOut:
    if address is not None and address[:1] == " " and address.replace(" ", "").isdigit():
        # ``?address=+14155550199`` unencoded: the query string turns the "+" into a space.
        address = "+" + address.strip()
    given = address if address is not None else (body.address if body else None)
    service.remove_suppression(session, principal, suppression_id=None, address=given)
    return SuccessOut()


@router.get(
    "/suppressions/{suppression_id}",
    responses=error_responses(401, 403, 404),
    description="An entry by its id, or by the address it lists (any spelling of it).",
)
def get_suppression(session: DbSession, principal: Reader, suppression_id: str) -> SuppressionOut:
    return suppression_out(service.get_suppression(session, principal.org_id, suppression_id))


@router.delete(
    "/suppressions/{suppression_id}",
    responses=error_responses(401, 403, 404),
    description="Removes an entry given by its id, or by the address it lists.",
)
def remove_suppression(session: DbSession, principal: Writer, suppression_id: str) -> SuccessOut:
    service.remove_suppression(session, principal, suppression_id=suppression_id, address=None)
    return SuccessOut()
