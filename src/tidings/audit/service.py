"""The audit log: who did what to which object, written in the same transaction as the change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from tidings.auth import Principal
from tidings.db import bulk_insert
from tidings.ids import new_id
from tidings.models import AuditEvent
from tidings.tenancy import for_org
from tidings.timeutil import utcnow


def record_event(
    session: Session,
    actor: Principal,
    action: str,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event. Written with a Core insert (no ORM object) since hot paths call it too."""
    bulk_insert(
        session,
        AuditEvent.__table__,  # type: ignore[arg-type]
        (
            "id",
            "org_id",
            "actor_type",
            "actor_id",
            "action",
            "target_type",
            "target_id",
            "data",
            "created_at",
        ),
        [
            (
                new_id("evt"),
                actor.org_id,
                actor.actor_type,
                actor.actor_id,
                action,
                target_type,
                target_id,
                data or {},
                utcnow(),
            )
        ],
    )


def events_query(
    org_id: str,
    *,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
) -> Select[AuditEvent]:
    """The organization's events, newest first, narrowed by whichever filters are given. Each
    filter has an (org_id, column) index, or rides the (org_id, created_at) one."""
    stmt = for_org(AuditEvent, org_id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if target_type is not None:
        stmt = stmt.where(AuditEvent.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditEvent.target_id == target_id)
    return stmt.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
