"""The send call (seed 002): one campaign and one ``messages`` row per recipient, in one transaction.

The fan-out is the hot path of the product, so it is shaped deliberately: one query reads every
member with its address and whether that address is suppressed (a left join on the suppression
list's unique index), rows are computed as plain tuples, and one ``bulk_insert`` writes them (COPY
on PostgreSQL). No ORM object per message, no round trip per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formataddr, parseaddr
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.campaigns import schedule
from tidings.campaigns.schemas import SendRequest
from tidings.campaigns.variants import letters, variant_letter
from tidings.contacts.normalize import InvalidAddress, normalize_email, normalize_phone
from tidings.db import bulk_insert
from tidings.delivery.render import check_syntax
from tidings.errors import NotFound, Unprocessable, ValidationFailed
from tidings.ids import new_id
from tidings.models import (
    Audience,
    AudienceMember,
    Campaign,
    Contact,
    Message,
    Organization,
    Suppression,
)
from tidings.templates.service import resolve_template
from tidings.tenancy import get_for_org, org_filter
from tidings.timeutil import isoformat_z, utcnow

MAX_RECIPIENTS = 10_000
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


class AudienceNotFound(NotFound):
    code = "audience_not_found"


class ChannelMismatch(Unprocessable):
    code = "channel_mismatch"


class MissingFrom(ValidationFailed):
    code = "missing_from"


class InvalidFrom(ValidationFailed):
    code = "invalid_from"


class VariantsNeedEmail(Unprocessable):
    code = "subject_variants_email_only"


class TooManyRecipients(Unprocessable):
    code = "too_many_recipients"


@dataclass
class Recipients:
    """Members sorted by contact id, split by what the send does with them."""

    total: int = 0
    skipped: int = 0
    suppressed: int = 0
    deliverable: list[tuple[str, str]] = field(default_factory=list)  # (contact id, address)

    @property
    def with_address(self) -> int:
        return self.suppressed + len(self.deliverable)


def check_from(channel: str, sender: str | None) -> str | None:
    """The sender as the worker will put it in the message; refused when it is no address."""
    if sender is None or not sender.strip():
        if channel == "email":
            raise MissingFrom(
                "an email send needs 'from', e.g. \"hello@yourdomain.com\"",
                details={"field": "from"},
            )
        return None
    if "\r" in sender or "\n" in sender:
        raise InvalidFrom("'from' must be one line", details={"field": "from"})
    if channel == "sms":
        return _sms_sender(sender.strip())
    name, address = parseaddr(sender)
    try:
        address = normalize_email(address)
    except InvalidAddress as exc:
        raise InvalidFrom(
            f"'from' is not an email address: {exc}", details={"field": "from"}
        ) from None
    return formataddr((name, address)) if name else address


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


def read_recipients(session: Session, org_id: str, audience_id: str, channel: str) -> Recipients:
    """One query: every member, its address for the channel, and whether it is suppressed."""
    address = Contact.email if channel == "email" else Contact.phone
    stmt = (
        select(Contact.id, address, Suppression.id)
        .select_from(AudienceMember)
        .join(Contact, Contact.id == AudienceMember.contact_id)
        .outerjoin(
            Suppression,
            and_(org_filter(Suppression, org_id), Suppression.address == address),
        )
        .where(
            AudienceMember.audience_id == audience_id,
            org_filter(AudienceMember, org_id),
            org_filter(Contact, org_id),
        )
        # Ordered by contact id so that a repeated send assigns the same places in the ramp.
        .order_by(Contact.id)
    )
    recipients = Recipients()
    for contact_id, to, suppression_id in session.execute(stmt):
        recipients.total += 1
        if not to:
            recipients.skipped += 1
        elif suppression_id is not None:
            recipients.suppressed += 1
        else:
            recipients.deliverable.append((contact_id, to))
    return recipients


def _count_with_address(session: Session, org_id: str, audience_id: str, channel: str) -> int:
    address = Contact.email if channel == "email" else Contact.phone
    stmt = (
        select(func.count())
        .select_from(AudienceMember)
        .join(Contact, Contact.id == AudienceMember.contact_id)
        .where(
            AudienceMember.audience_id == audience_id,
            org_filter(AudienceMember, org_id),
            address.is_not(None),
        )
    )
    return session.scalar(stmt) or 0


def _refuse_too_many(count: int) -> None:
    """The limit counts members with an address, suppressed ones included: whether a send is
    accepted should not depend on the current state of the suppression list."""
    if count > MAX_RECIPIENTS:
        raise TooManyRecipients(
            f"this audience has {count:,} recipients; at most {MAX_RECIPIENTS:,} per send. "
            "Split bigger audiences.",
            details={"recipients": count, "max": MAX_RECIPIENTS},
        )


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
    template = resolve_template(session, actor.org_id, request.template)
    channel = request.channel or template.channel
    if template.channel != channel:
        raise ChannelMismatch(
            f"template {template.slug!r} is for {template.channel}, not {channel}",
            details={"field": "channel", "templateChannel": template.channel},
        )
    sender = check_from(channel, request.from_)
    variants = check_variants(channel, request.subject_variants)
    zone = request.scheduled_at_tz or _org_timezone(session, actor.org_id)
    starts_at, _ = schedule.resolve_starts_at(request.scheduled_local, zone, now)
    ramp = request.ramp_minutes or 0

    # A cheap guard so a huge audience is refused before its members are read into memory.
    if audience.contact_count > MAX_RECIPIENTS:
        _refuse_too_many(_count_with_address(session, actor.org_id, audience.id, channel))
    recipients = read_recipients(session, actor.org_id, audience.id, channel)
    _refuse_too_many(recipients.with_address)

    campaign = Campaign(
        id=new_id("cmp"),
        org_id=actor.org_id,
        audience_id=audience.id,
        template_id=template.id,
        channel=channel,
        from_address=sender,
        status="scheduled" if recipients.deliverable else "completed",
        completed_at=None if recipients.deliverable else now,
        template_subject=template.subject,
        template_html=template.html,
        template_text=template.text,
        subject_variants=variants,
        variables=dict(request.variables),
        ramp_minutes=ramp,
        starts_at=starts_at,
        ends_at=schedule.ends_at(starts_at, ramp),
        total=recipients.total,
        scheduled=len(recipients.deliverable),
        suppressed=recipients.suppressed,
        skipped=recipients.skipped,
    )
    session.add(campaign)
    session.flush()
    _insert_messages(session, campaign, recipients.deliverable, now)
    _audit_send(session, actor, campaign)
    return campaign


def _insert_messages(
    session: Session, campaign: Campaign, deliverable: list[tuple[str, str]], now: datetime
) -> None:
    n_variants = len(campaign.subject_variants or [])
    times = schedule.schedule_times(campaign.starts_at, campaign.ramp_minutes, len(deliverable))
    rows = (
        (
            new_id("msg"),
            campaign.org_id,
            campaign.id,
            contact_id,
            campaign.channel,
            to,
            "scheduled",
            at,
            {"subject_variant": variant_letter(contact_id, n_variants)} if n_variants else {},
            0,
            now,
            now,
        )
        for (contact_id, to), at in zip(deliverable, times, strict=True)
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
