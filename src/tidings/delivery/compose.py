"""A claimed message becomes an email or an SMS: render it now, or say why it is not sent.

Rendering happens at delivery time, not at scheduling time: the campaign's template snapshot (so
editing a template after scheduling changes nothing), the message's subject variant, the contact's
data and address as they are now, the send request's variables (DESIGN.md §4), and the
recipient's own ``unsubscribe_url``. Suppression is checked here too, just before sending, so an
address that unsubscribed after the campaign was scheduled gets nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from tidings.contacts.normalize import suppression_key
from tidings.delivery.render import (
    ContactData,
    TemplateRenderFailed,
    render_message,
    template_variables,
)
from tidings.delivery.store import BatchContext, CampaignSnapshot, ClaimedMessage
from tidings.delivery.tokens import unsubscribe_url
from tidings.delivery.transports.base import Email, Outgoing, Sms
from tidings.delivery.transports.mime import text_from_html


@dataclass(frozen=True)
class Senders:
    """Fallback senders for campaigns that name none."""

    email: str
    sms: str | None


@dataclass(frozen=True)
class Skip:
    """A claimed message that is not handed to a transport, and the status it ends in."""

    status: str  # cancelled | suppressed | failed
    reason: str


def compose(
    message: ClaimedMessage, context: BatchContext, senders: Senders, now: datetime
) -> Outgoing | Skip:
    """``message`` (as ``readdressed`` gives it) as an email or SMS, or why it is not sent."""
    campaign = context.campaigns.get(message.campaign_id)
    if campaign is None or campaign.status == "cancelled":
        return Skip("cancelled", "the campaign was cancelled")
    contact = context.contacts.get((message.org_id, message.contact_id))
    if contact is None:
        return Skip("cancelled", "the contact was deleted")
    if current_address(contact, message.channel) is None:
        what = "an email address" if message.channel == "email" else "a phone number"
        return Skip("cancelled", f"the contact no longer has {what}")
    if (message.org_id, suppression_key(message.to_address)) in context.suppressed:
        return Skip("suppressed", "the address is on the suppression list")
    link = unsubscribe_url(message.org_id, message.to_address)
    variables = template_variables(contact, campaign.variables, link)
    try:
        rendered = render_message(
            subject=subject_source(campaign, message) if message.channel == "email" else None,
            text=campaign.text,
            # An SMS renders its text; its HTML only when there is no text to send.
            html=campaign.html if message.channel == "email" or campaign.text is None else None,
            variables=variables,
        )
    except TemplateRenderFailed as exc:
        return Skip("failed", exc.message)
    if message.channel == "sms":
        body = rendered.text if rendered.text is not None else text_from_html(rendered.html or "")
        return _sms(message, campaign, senders, body)
    # A part that renders blank ({% if vip %}...{% endif %} for others) is derived from the other
    # (``mime.build_email``); with both blank there is nothing to send, as for an empty SMS.
    text, html = _visible(rendered.text), _visible(rendered.html)
    if text is None and html is None:
        return Skip("failed", "the template renders an empty email body for this contact")
    return Email(
        message_id=message.id,
        sender=campaign.from_address or senders.email,
        to=message.to_address,
        subject=rendered.subject or "",
        text=text,
        html=html,
        unsubscribe_url=link,
        date=now,
    )


def _visible(part: str | None) -> str | None:
    return part if part is not None and part.strip() else None


def current_address(contact: ContactData, channel: str) -> str | None:
    return contact.email if channel == "email" else contact.phone


def readdressed(message: ClaimedMessage, context: BatchContext) -> ClaimedMessage:
    """``message`` to its contact's address as it is now. A send fixes each message's address
    when it is scheduled, but the contact may change it before the message is due: a corrected
    address gets the message (and the message row records it), a removed one gets nothing
    (``compose``), and the old address is never written to again."""
    contact = context.contacts.get((message.org_id, message.contact_id))
    address = None if contact is None else current_address(contact, message.channel)
    if address is None or address == message.to_address:
        return message
    return replace(message, to_address=address)


def subject_source(campaign: CampaignSnapshot, message: ClaimedMessage) -> str | None:
    """The message's A/B variant when the campaign has variants, else the template's subject."""
    variants = campaign.subject_variants
    letter = message.metadata.get("subject_variant")
    if variants and isinstance(letter, str) and len(letter) == 1:
        index = ord(letter) - ord("A")
        if 0 <= index < len(variants):
            return variants[index]
    return campaign.subject


def _sms(
    message: ClaimedMessage, campaign: CampaignSnapshot, senders: Senders, body: str
) -> Sms | Skip:
    sender = campaign.from_address or senders.sms
    if not body.strip():
        return Skip("failed", "the template renders an empty SMS body")
    return Sms(message_id=message.id, sender=sender, to=message.to_address, body=body)
