"""HTTP for the send call, campaigns and messages: parse, call one service function, shape the answer.

The send lives here, not in the audiences router, because what it creates is a campaign.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from tidings.auth import Principal
from tidings.campaigns import messages, reports, service
from tidings.campaigns.reports import Counts
from tidings.campaigns.schemas import (
    CampaignOut,
    CampaignStatus,
    MessageOut,
    MessageStatus,
    SendRequest,
    SendResponse,
)
from tidings.contacts.schemas import Text
from tidings.deps import DbSession, require_scope
from tidings.errors import error_responses
from tidings.filters import another_spelling, one_spelling
from tidings.models import Campaign, Message
from tidings.pagination import Page, PageParams, page_params, paginate
from tidings.timeutil import isoformat_z

router = APIRouter(tags=["campaigns"])

Sender = Annotated[Principal, Depends(require_scope("write:audiences"))]
Reader = Annotated[Principal, Depends(require_scope("read:campaigns"))]
Writer = Annotated[Principal, Depends(require_scope("write:campaigns"))]
Params = Annotated[PageParams, Depends(page_params)]

SEND_DESCRIPTION = """Schedules the template for every member of the audience: one campaign, and one
message per recipient with status `scheduled`, in one transaction. Answers **201** with the counts.

- `total` = audience members = `scheduled` + `suppressed` + `skipped` (`skipped`: members without an
  address for the channel; `suppressed`: on the organization's suppression list, no message made).
- At most 10,000 recipients (members with an address, suppressed ones included): more is a 422
  `too_many_recipients` and nothing is written.
- `scheduled_local` in `scheduled_at_tz` (default: the organization's zone): a time the clocks skip
  (DST) or a time in the past is a 422; a repeated time takes the earlier instant. Absent: now.
- `ramp_minutes`: message i of n at `starts_at + ramp * i / n`, ordered by contact id.
- `subject_variants`: variant = first 8 bytes of SHA-256(contact id), big-endian, mod N; the letter
  is stored at `metadata.subject_variant`.

Errors: 400 malformed body (unknown field, bad `from`, bad `scheduled_local` format, unknown time
zone, variables not a JSON object or nested too deep, out-of-range `ramp_minutes` or variant
count; an sms send with no sender while an SMS API is configured), 404 audience or template
not in your organization, 422 channel mismatch, variants on sms, Liquid syntax, DST gap, past time,
too many recipients. `Idempotency-Key` replays the first answer to a retry."""


@router.post(
    "/audiences/{audience_id}/send",
    status_code=201,
    responses=error_responses(400, 401, 403, 404, 409, 422),
    description=SEND_DESCRIPTION,
    tags=["audiences"],
)
def send_to_audience(
    session: DbSession, principal: Sender, audience_id: str, body: SendRequest
) -> SendResponse:
    campaign = service.send_to_audience(session, principal, audience_id, body)
    return SendResponse(**service.send_response(campaign))


def campaign_out(campaign: Campaign, counts: tuple[Counts, dict[str, Counts]]) -> CampaignOut:
    totals, by_variant = counts

    def optional(value: Any) -> str | None:
        return isoformat_z(value) if value is not None else None

    return CampaignOut(
        id=campaign.id,
        audienceId=campaign.audience_id,
        templateId=campaign.template_id,
        channel=campaign.channel,
        from_=campaign.from_address,
        status=campaign.status,
        subject=campaign.template_subject,
        subjectVariants=campaign.subject_variants,
        variables=campaign.variables or {},
        rampMinutes=campaign.ramp_minutes,
        startsAt=isoformat_z(campaign.starts_at),
        endsAt=isoformat_z(campaign.ends_at),
        total=campaign.total,
        scheduled=campaign.scheduled,
        suppressed=campaign.suppressed,
        skipped=campaign.skipped,
        counts=totals,
        variants=by_variant,
        createdAt=isoformat_z(campaign.created_at),
        updatedAt=isoformat_z(campaign.updated_at),
        completedAt=optional(campaign.completed_at),
        cancelledAt=optional(campaign.cancelled_at),
    )


def _with_counts(session: DbSession, org_id: str, campaign: Campaign) -> CampaignOut:
    counts = reports.status_counts(session, org_id, [campaign])
    return campaign_out(campaign, counts[campaign.id])


@router.get("/campaigns", responses=error_responses(400, 401, 403))
def list_campaigns(
    session: DbSession,
    principal: Reader,
    params: Params,
    audience_id: Annotated[Text | None, Query(alias="audienceId")] = None,
    status: CampaignStatus | None = None,
    audience: Annotated[Text | None, another_spelling("audience")] = None,
    audience_snake: Annotated[Text | None, another_spelling("audience_id")] = None,
) -> Page[CampaignOut]:
    audience_id = one_spelling(
        "audience",
        {"audienceId": audience_id, "audience": audience, "audience_id": audience_snake},
    )
    stmt = reports.list_campaigns_query(principal.org_id, audience_id, status)
    page = paginate(session, stmt, params, lambda campaign: campaign)
    counts = reports.status_counts(session, principal.org_id, page.data)
    return Page[CampaignOut](
        data=[campaign_out(c, counts[c.id]) for c in page.data],
        total=page.total,
        page=page.page,
        limit=page.limit,
        totalPages=page.totalPages,
    )


@router.get("/campaigns/{campaign_id}", responses=error_responses(401, 403, 404))
def get_campaign(session: DbSession, principal: Reader, campaign_id: str) -> CampaignOut:
    campaign = reports.get_campaign(session, principal.org_id, campaign_id)
    return _with_counts(session, principal.org_id, campaign)


@router.post(
    "/campaigns/{campaign_id}/cancel",
    responses=error_responses(401, 403, 404, 409),
    description="Messages not yet sent become `cancelled`, and the campaign too. A campaign that "
    "is completed or cancelled already is a 409.",
)
def cancel_campaign(session: DbSession, principal: Writer, campaign_id: str) -> CampaignOut:
    campaign = messages.cancel_campaign(session, principal, campaign_id)
    return _with_counts(session, principal.org_id, campaign)


def message_out(message: Message) -> MessageOut:
    metadata = message.metadata_ or {}
    return MessageOut(
        id=message.id,
        campaignId=message.campaign_id,
        contactId=message.contact_id,
        channel=message.channel,
        to=message.to_address,
        status=message.status,
        subjectVariant=metadata.get("subject_variant"),
        scheduledAt=isoformat_z(message.scheduled_at),
        sentAt=isoformat_z(message.sent_at) if message.sent_at else None,
        metadata=metadata,
        error=message.error,
        providerId=message.provider_id,
        attempts=message.attempt,
        createdAt=isoformat_z(message.created_at),
        updatedAt=isoformat_z(message.updated_at),
    )


@router.get("/messages", responses=error_responses(400, 401, 403))
def list_messages(
    session: DbSession,
    principal: Reader,
    params: Params,
    campaign_id: Annotated[Text | None, Query(alias="campaignId")] = None,
    status: MessageStatus | None = None,
    contact_id: Annotated[Text | None, Query(alias="contactId")] = None,
    campaign: Annotated[Text | None, another_spelling("campaign")] = None,
    campaign_snake: Annotated[Text | None, another_spelling("campaign_id")] = None,
    contact: Annotated[Text | None, another_spelling("contact")] = None,
    contact_snake: Annotated[Text | None, another_spelling("contact_id")] = None,
) -> Page[MessageOut]:
    """Filter by campaign (``campaignId``, or ``campaign`` / ``campaign_id``), ``status`` and
    contact (``contactId``, or ``contact`` / ``contact_id``)."""
    campaign_id = one_spelling(
        "campaign",
        {"campaignId": campaign_id, "campaign": campaign, "campaign_id": campaign_snake},
    )
    contact_id = one_spelling(
        "contact", {"contactId": contact_id, "contact": contact, "contact_id": contact_snake}
    )
    stmt = messages.list_messages_query(principal.org_id, campaign_id, status, contact_id)
    return paginate(session, stmt, params, message_out)


@router.get("/messages/{message_id}", responses=error_responses(401, 403, 404))
def get_message(session: DbSession, principal: Reader, message_id: str) -> MessageOut:
    return message_out(messages.get_message(session, principal.org_id, message_id))
