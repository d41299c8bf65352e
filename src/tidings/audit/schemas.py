"""The audit event as the API shows it: camelCase, like every seed-000 object."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tidings.models import AuditEvent
from tidings.timeutil import isoformat_z


class AuditEventOut(BaseModel):
    id: str
    organizationId: str
    actorType: str  # user | api_key | internal | cli
    actorId: str | None
    action: str
    targetType: str | None
    targetId: str | None
    data: dict[str, Any]
    createdAt: str

    @classmethod
    def from_model(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            organizationId=event.org_id,
            actorType=event.actor_type,
            actorId=event.actor_id,
            action=event.action,
            targetType=event.target_type,
            targetId=event.target_id,
            data=event.data,
            createdAt=isoformat_z(event.created_at),
        )
