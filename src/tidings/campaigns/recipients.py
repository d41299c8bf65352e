"""Who a send reaches: every member of the audience, split into recipients, suppressed addresses
and members skipped (without an address for the channel, or with one another member already
receives), read in one query.

One query reads every member with its address and whether that address is suppressed (a left join
on the suppression list's unique ``(org_id, address)`` index), ordered by contact id: the fan-out's
only read, however big the audience.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from tidings.contacts.normalize import suppression_key
from tidings.errors import Unprocessable
from tidings.models import AudienceMember, Contact, Suppression
from tidings.tenancy import org_filter

MAX_RECIPIENTS = 10_000


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


def read_recipients(session: Session, org_id: str, audience_id: str, channel: str) -> Recipients:
    """One query: every member, its address for the channel, and whether it is suppressed.

    One message per mailbox: contacts keep an email's local part as written, so ``Priya@`` and
    ``priya@`` can be two contacts of one audience, and each got the campaign. Only the first
    by contact id receives it; the others are ``skipped``, as the suppression list treats them
    alike (it matches addresses in any case: ``suppression_key``)."""
    address = Contact.email if channel == "email" else Contact.phone
    stmt = (
        select(Contact.id, address, Suppression.id)
        .select_from(AudienceMember)
        .join(Contact, Contact.id == AudienceMember.contact_id)
        .outerjoin(
            Suppression,
            and_(org_filter(Suppression, org_id), Suppression.address == func.lower(address)),
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
    mailboxes: set[str] = set()
    # Through the Core connection: plain rows, without the ORM's per-row result processing.
    for contact_id, to, suppression_id in session.connection().execute(stmt):
        recipients.total += 1
        if not to:
            recipients.skipped += 1
        elif suppression_id is not None:
            recipients.suppressed += 1
        elif (mailbox := suppression_key(to)) in mailboxes:
            recipients.skipped += 1
        else:
            mailboxes.add(mailbox)
            recipients.deliverable.append((contact_id, to))
    return recipients


def count_with_address(session: Session, org_id: str, audience_id: str, channel: str) -> int:
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


def refuse_too_many(count: int) -> None:
    """The limit counts members with an address, suppressed ones included: whether a send is
    accepted should not depend on the current state of the suppression list."""
    if count > MAX_RECIPIENTS:
        raise TooManyRecipients(
            f"this audience has {count:,} recipients; at most {MAX_RECIPIENTS:,} per send. "
            "Split bigger audiences.",
            details={"recipients": count, "max": MAX_RECIPIENTS},
        )
