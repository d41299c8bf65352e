"""HTTP for audit: parse, call one service function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tidings.audit import service
from tidings.audit.schemas import AuditEventOut
from tidings.auth import Principal
from tidings.deps import DbSession, require_scope
from tidings.errors import error_responses
from tidings.pagination import Page, PageParams, page_params, paginate

router = APIRouter(tags=["audit"])


@router.get(
    "/audit-events",
    response_model=Page[AuditEventOut],
    responses=error_responses(400, 401, 403),
    summary="List audit events, newest first",
)
def list_audit_events(
    session: DbSession,
    principal: Annotated[Principal, Depends(require_scope("read:audit"))],
    params: Annotated[PageParams, Depends(page_params)],
    action: Annotated[str | None, Query(description="e.g. audience.csv_imported")] = None,
    target_type: Annotated[str | None, Query(alias="targetType")] = None,
    target_id: Annotated[str | None, Query(alias="targetId")] = None,
) -> Page[AuditEventOut]:
    stmt = service.events_query(
        principal.org_id, action=action, target_type=target_type, target_id=target_id
    )
    return paginate(session, stmt, params, AuditEventOut.from_model)
