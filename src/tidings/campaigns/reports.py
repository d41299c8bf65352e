"""Reading campaigns: listing, one campaign, and its messages counted per status and per variant.

Counts are grouped in the database (one ``GROUP BY`` for a whole page of campaigns), never by
loading messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tidings.campaigns.variants import letters
from tidings.errors import NotFound
from tidings.models import Campaign, Message
from tidings.tenancy import for_org, get_for_org, org_filter

MESSAGE_STATUSES = ("scheduled", "sending", "sent", "failed", "cancelled", "suppressed")


class CampaignNotFound(NotFound):
    pass


Counts = dict[str, int]


def _zeros() -> Counts:
    return dict.fromkeys(MESSAGE_STATUSES, 0)


def get_campaign(session: Session, org_id: str, campaign_id: str) -> Campaign:
    return get_for_org(session, Campaign, org_id, campaign_id, CampaignNotFound)


def list_campaigns_query(org_id: str, audience_id: str | None, status: str | None) -> Select[Any]:
    stmt = for_org(Campaign, org_id)
    if audience_id:
        stmt = stmt.where(Campaign.audience_id == audience_id)
    if status:
        stmt = stmt.where(Campaign.status == status)
    return stmt.order_by(Campaign.created_at.desc(), Campaign.id.desc())


def status_counts(
    session: Session, org_id: str, campaigns: Sequence[Campaign]
) -> dict[str, tuple[Counts, dict[str, Counts]]]:
    """``{campaign id: (per status, {variant letter: per status})}`` in one grouped query."""
    result: dict[str, tuple[Counts, dict[str, Counts]]] = {
        c.id: (_zeros(), {letter: _zeros() for letter in letters(len(c.subject_variants or []))})
        for c in campaigns
    }
    if not campaigns:
        return result
    variant = Message.metadata_["subject_variant"].as_string()
    stmt = (
        select(Message.campaign_id, variant, Message.status, func.count())
        .where(org_filter(Message, org_id), Message.campaign_id.in_(list(result)))
        .group_by(Message.campaign_id, variant, Message.status)
    )
    for campaign_id, letter, status, count in session.execute(stmt):
        totals, by_variant = result[campaign_id]
        totals[status] = totals.get(status, 0) + count
        if letter:
            by_variant.setdefault(letter, _zeros())
            by_variant[letter][status] = by_variant[letter].get(status, 0) + count
    return result
