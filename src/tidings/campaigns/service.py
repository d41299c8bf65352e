"""The send call (seed 002): one campaign and one ``messages`` row per recipient, in one transaction.

The fan-out is the hot path of the product, so it is shaped deliberately: one query reads every
member with its address and whether that address is suppressed (a left join on the suppression
list's unique index), rows are computed as plain tuples, and one ``bulk_insert`` writes them (COPY
on PostgreSQL). No ORM object per message, no round trip per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import getaddresses
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tidings.audiences.service import AudienceNotFound
from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.campaigns import schedule
from tidings.campaigns.recipients import (
    MAX_RECIPIENTS,
    Recipients,
    count_with_address,
    read_recipients,
    refuse_too_many,
)
from tidings.campaigns.schemas import SendRequest
from tidings.campaigns.variants import letters, variant_index
from tidings.config import get_settings
from tidings.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from tidings.db import bulk_insert
from tidings.delivery.render import check_syntax
from tidings.delivery.transports import is_local
from tidings.errors import Unprocessable, ValidationFailed
from tidings.ids import new_id, new_ids
from tidings.models import (
    Audience,
    Campaign,
    Message,
    Organization,
    Template,
)
from tidings.templates.service import resolve_template
from tidings.tenancy import get_for_org, org_filter
from tidings.timeutil import isoformat_z, utcnow

ACTIVE_STATUSES = ("scheduled", "in_progress")
_SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
MESSAGE_COLUMNS = (
    "id",
    "org_id",
    "campaign_id",
    "contact_id",
    "channel",
    "to_address",
    "status",
    "scheduled_at",
    "metadata",
    "attempt",
    "created_at",
    "updated_at",
)


class ChannelMismatch(Unprocessable):
    code = "channel_mismatch"


class MissingFrom(ValidationFailed):
    code = "missing_from"


class InvalidFrom(ValidationFailed):
    code = "invalid_from"


class VariantsNeedEmail(Unprocessable):
    code = "subject_variants_email_only"


def sms_sender_required() -> bool:
    """Whether an SMS send must name its sender: an SMS API refuses a message without one, and
    the server has no ``TIDINGS_SMS_FROM`` to fall back on (a ``file://`` outbox needs none)."""
    settings = get_settings()
    return settings.sms_from is None and not is_local(settings.sms_transport)


def check_from(channel: str, sender: str | None) -> str | None:
    """The sender as the worker will put it in the message; refused when it is no address.

    Without one, the worker uses the configured default (``TIDINGS_EMAIL_FROM``, which has one,
    or ``TIDINGS_SMS_FROM``). An SMS API refuses a message without a sender, so an SMS send
    that would have none is refused here, before any message is written; a ``file://`` outbox
    records it without."""
    if sender is None or not sender.strip():
        if channel == "sms" and sms_sender_required():
            raise MissingFrom(
                "an sms send needs 'from' (an E.164 number or a sender id of at most 11 "
                "characters), or TIDINGS_SMS_FROM set on the server",
                details={"field": "from"},
            )
        return None
    if "\r" in sender or "\n" in sender:
        raise InvalidFrom("'from' must be one line", details={"field": "from"})
    if channel == "sms":
        return _sms_sender(sender.strip())
    parsed = getaddresses([sender])
    if len(parsed) != 1:
        raise InvalidFrom("'from' must be a single address", details={"field": "from"})
    name, address = parsed[0]
    try:
        address = normalize_email(address)
    except InvalidAddress as exc:
        raise InvalidFrom(
            f"'from' is not an email address: {exc}", details={"field": "from"}
        ) from None
    # Address() quotes the display name where needed but leaves it unencoded: encoding non-ASCII
    # names is the transport's job, done once when the message is built.
    return str(Address(display_name=name, addr_spec=address)) if name else address


def _sms_sender(sender: str) -> str:
    if _SENDER_ID.match(sender):
        return sender
    try:
        return normalize_phone(sender)
    except InvalidAddress as exc:
        raise InvalidFrom(
            f"'from' for sms is an E.164 number or an alphanumeric sender id of at most 11 "
            f"characters: {exc}",
            details={"field": "from"},
        ) from None


def check_variants(channel: str, variants: list[str] | None) -> list[str] | None:
    if not variants:
        return None
    if channel != "email":
        raise VariantsNeedEmail(
            "subject_variants are for email sends only; sms has no subject",
            details={"field": "subject_variants"},
        )
    for index, subject in enumerate(variants):
        check_syntax(subject, f"subject_variants[{index}]")
    return variants


@dataclass(frozen=True)
class SendPlan:
    """A send request checked against the template and the clock: what the campaign will be."""

    template: Template
    channel: str
    sender: str | None
    variants: list[str] | None
    starts_at: datetime
    ramp_minutes: int


def plan_send(session: Session, org_id: str, request: SendRequest, now: datetime) -> SendPlan:
    template = resolve_template(session, org_id, request.template)
    channel = request.channel or template.channel
    if template.channel != channel:
        raise ChannelMismatch(
            f"template {template.slug!r} is for {template.channel}, not {channel}",
            details={"field": "channel", "templateChannel": template.channel},
        )
    sender = check_from(channel, request.from_)
    variants = check_variants(channel, request.subject_variants)
    requested = request.scheduled_at_tz
    # An empty name is refused like any unknown one, not read as "the organization's zone".
    zone = requested if requested is not None else _org_timezone(session, org_id)
    starts_at, _ = schedule.resolve_starts_at(
        request.scheduled_local, zone, now, stored=requested is None
    )
    return SendPlan(template, channel, sender, variants, starts_at, request.ramp_minutes or 0)


def send_to_audience(
    session: Session,
    actor: Principal,
    audience_id: str,
    request: SendRequest,
    now: datetime | None = None,
) -> Campaign:
    """Validates everything before writing anything, then writes the campaign and its messages."""
    now = now or utcnow()
    # Locked (PostgreSQL) like the audience delete does, so a delete cannot pass its "no active
    # campaign" check while this send is writing one.
    audience = get_for_org(
        session, Audience, actor.org_id, audience_id, AudienceNotFound, for_update=True
    )
    plan = plan_send(session, actor.org_id, request, now)
    # A cheap guard so a huge audience is refused before its members are read into memory.
    if audience.contact_count > MAX_RECIPIENTS:
        refuse_too_many(count_with_address(session, actor.org_id, audience.id, plan.channel))
    recipients = read_recipients(session, actor.org_id, audience.id, plan.channel)
    refuse_too_many(recipients.with_address)

    campaign = _new_campaign(actor.org_id, audience.id, plan, request, recipients, now)
    session.add(campaign)
    session.flush()
    _insert_messages(session, campaign, recipients.deliverable, now)
    _audit_send(session, actor, campaign)
    return campaign


def _new_campaign(
    org_id: str,
    audience_id: str,
    plan: SendPlan,
    request: SendRequest,
    recipients: Recipients,
    now: datetime,
) -> Campaign:
    """The template is copied in, so editing it later does not change what this send delivers.
    A send with nobody to deliver to is complete at once: no worker will ever touch it. The
    campaign, its messages and its completion carry the one ``now`` of the request, so none
    appears to precede another."""
    return Campaign(
        id=new_id("cmp"),
        created_at=now,
        updated_at=now,
        org_id=org_id,
        audience_id=audience_id,
        template_id=plan.template.id,
        channel=plan.channel,
        from_address=plan.sender,
        status="scheduled" if recipients.deliverable else "completed",
        completed_at=None if recipients.deliverable else now,
        template_subject=plan.template.subject,
        template_html=plan.template.html,
        template_text=plan.template.text,
        subject_variants=plan.variants,
        variables=dict(request.variables),
        ramp_minutes=plan.ramp_minutes,
        starts_at=plan.starts_at,
        ends_at=schedule.ends_at(plan.starts_at, plan.ramp_minutes),
        total=recipients.total,
        scheduled=len(recipients.deliverable),
        suppressed=recipients.suppressed,
        skipped=recipients.skipped,
    )


def _insert_messages(
    session: Session, campaign: Campaign, deliverable: list[tuple[str, str]], now: datetime
) -> None:
    """Rows as plain tuples for ``bulk_insert``. Per-row work is kept to what differs per row:
    ids come from one random read, the campaign's columns are read once (not through the ORM's
    attribute machinery 10,000 times), and the rows of one variant share one metadata dict, which
    bulk_insert then encodes once. Measured at 10,000 rows on SQLite, these took the send from
    3.0x to 2.2-2.4x the driver's raw executemany of the same rows (``make bench``)."""
    n_variants = len(campaign.subject_variants or [])
    times = schedule.schedule_times(campaign.starts_at, campaign.ramp_minutes, len(deliverable))
    metadata = [{"subject_variant": letter} for letter in letters(n_variants)] or [{}]
    ids = new_ids("msg", len(deliverable))
    org_id, campaign_id, channel = campaign.org_id, campaign.id, campaign.channel
    rows = (
        (
            message_id,
            org_id,
            campaign_id,
            contact_id,
            channel,
            to,
            "scheduled",
            at,
            metadata[variant_index(contact_id, n_variants) if n_variants else 0],
            0,
            now,
            now,
        )
        for message_id, (contact_id, to), at in zip(ids, deliverable, times, strict=True)
    )
    bulk_insert(session, Message.__table__, MESSAGE_COLUMNS, rows)  # type: ignore[arg-type]


def _audit_send(session: Session, actor: Principal, campaign: Campaign) -> None:
    record_event(
        session,
        actor,
        "audience.sent",
        target_type="audience",
        target_id=campaign.audience_id,
        data={
            "campaign_id": campaign.id,
            "template_id": campaign.template_id,
            "channel": campaign.channel,
            "total": campaign.total,
            "scheduled": campaign.scheduled,
            "suppressed": campaign.suppressed,
            "skipped": campaign.skipped,
            "starts_at": isoformat_z(campaign.starts_at),
            "ends_at": isoformat_z(campaign.ends_at),
            "subject_variants": letters(len(campaign.subject_variants or [])),
        },
    )


def _org_timezone(session: Session, org_id: str) -> str:
    org = session.get(Organization, org_id)
    return org.timezone if org is not None else "UTC"


def send_response(campaign: Campaign) -> dict[str, Any]:
    return {
        "audience_id": campaign.audience_id,
        "total": campaign.total,
        "scheduled": campaign.scheduled,
        "suppressed": campaign.suppressed,
        "starts_at": isoformat_z(campaign.starts_at),
        "ends_at": isoformat_z(campaign.ends_at),
        "campaign_id": campaign.id,
        "skipped": campaign.skipped,
    }


def audience_has_active_campaign(session: Session, org_id: str, audience_id: str) -> bool:
    """For the audience delete (seed 000: no deleting an audience with an active campaign)."""
    stmt = select(
        exists().where(
            org_filter(Campaign, org_id),
            Campaign.audience_id == audience_id,
            Campaign.status.in_(ACTIVE_STATUSES),
        )
    )
    return bool(session.scalar(stmt))
