"""Reading messages (one row per recipient of a campaign) and cancelling the ones not yet sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, update
from sqlalchemy.orm import Session

from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.campaigns.reports import CampaignNotFound
from tidings.errors import Conflict, NotFound
from tidings.models import Campaign, Message
from tidings.tenancy import for_org, get_for_org, org_filter
from tidings.timeutil import utcnow

FINAL_CAMPAIGN_STATUSES = ("completed", "cancelled")


class MessageNotFound(NotFound):
    pass


class CampaignNotCancellable(Conflict):
    code = "campaign_not_cancellable"


def list_messages_query(
    org_id: str, campaign_id: str | None, status: str | None, contact_id: str | None
) -> Select[Any]:
    stmt = for_org(Message, org_id)
    if campaign_id:
        stmt = stmt.where(Message.campaign_id == campaign_id)
    if status:
        stmt = stmt.where(Message.status == status)
    if contact_id:
        stmt = stmt.where(Message.contact_id == contact_id)
    return stmt.order_by(Message.scheduled_at, Message.id)


def get_message(session: Session, org_id: str, message_id: str) -> Message:
    return get_for_org(session, Message, org_id, message_id, MessageNotFound)


def cancel_campaign(session: Session, actor: Principal, campaign_id: str) -> Campaign:
    """Every message still ``scheduled`` becomes ``cancelled`` in one statement; a message a worker
    already holds (``sending``) finishes, since it may already be with the provider. The campaign
    row is locked first so a cancel and the worker's completion cannot both win."""
    campaign = get_for_org(
        session, Campaign, actor.org_id, campaign_id, CampaignNotFound, for_update=True
    )
    if campaign.status in FINAL_CAMPAIGN_STATUSES:
        raise CampaignNotCancellable(
            f"campaign {campaign.id!r} is {campaign.status} already; only scheduled or "
            "in-progress campaigns can be cancelled",
            details={"status": campaign.status},
        )
    now = utcnow()
    result = session.execute(
        update(Message)
        .where(
            org_filter(Message, actor.org_id),
            Message.campaign_id == campaign.id,
            Message.status == "scheduled",
        )
        .values(status="cancelled", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    campaign.status = "cancelled"
    campaign.cancelled_at = now
    session.flush()
    record_event(
        session,
        actor,
        "campaign.cancelled",
        target_type="campaign",
        target_id=campaign.id,
        data={"cancelled_messages": int(result.rowcount)},  # type: ignore[attr-defined]
    )
    return campaign
