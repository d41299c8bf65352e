"""HTTP for audit: parse, call one service function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tidings.audit import service
from tidings.audit.schemas import AuditEventOut
from tidings.auth import Principal
from tidings.contacts.schemas import Text
from tidings.deps import DbSession, require_scope
from tidings.errors import error_responses
from tidings.filters import another_spelling, one_spelling
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
    action: Annotated[Text | None, Query(description="e.g. audience.csv_imported")] = None,
    target_type: Annotated[Text | None, Query(alias="targetType")] = None,
    target_id: Annotated[Text | None, Query(alias="targetId")] = None,
    target_type_snake: Annotated[Text | None, another_spelling("target_type")] = None,
    target_id_snake: Annotated[Text | None, another_spelling("target_id")] = None,
) -> Page[AuditEventOut]:
    """Filters as the other lists read them: an empty value filters by nothing, and
    ``target_type`` / ``target_id`` are read as well as ``targetType`` / ``targetId``."""
    stmt = service.events_query(
        principal.org_id,
        action=action or None,
        target_type=one_spelling(
            "target type", {"targetType": target_type, "target_type": target_type_snake}
        ),
        target_id=one_spelling("target", {"targetId": target_id, "target_id": target_id_snake}),
    )
    return paginate(session, stmt, params, AuditEventOut.from_model)
