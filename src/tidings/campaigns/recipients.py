"""Who a send reaches: every member of the audience, split into recipients, suppressed addresses
and members skipped (without an address for the channel, or with one another member already
receives).

Two reads, however big the audience: every member with its address, ordered by contact id, then
which of those addresses the suppression list holds (its unique ``(org_id, address)`` index,
probed with the addresses' ``suppression_key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.contacts.normalize import suppression_key
from tidings.db import is_postgres, value_list
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
    """Every member, its address for the channel, and whether it is suppressed.

    Suppressed means that the list holds the address's ``suppression_key``, computed here as
    the worker computes it: a join on SQL ``lower()`` folded ``İ`` and a final ``Σ`` otherwise
    than Python on PostgreSQL (and only ASCII in a database with the ``C`` ctype), so the send
    counted such members as scheduled and the worker then suppressed their messages.

    One message per mailbox: contacts keep an email's local part as written, so ``Priya@`` and
    ``priya@`` can be two contacts of one audience, and each got the campaign. Only the first
    by contact id receives it; the others are ``skipped``, as the suppression list treats them
    alike."""
    address = Contact.email if channel == "email" else Contact.phone
    stmt = (
        select(Contact.id, address)
        .select_from(AudienceMember)
        .join(Contact, Contact.id == AudienceMember.contact_id)
        .where(
            AudienceMember.audience_id == audience_id,
            org_filter(AudienceMember, org_id),
            org_filter(Contact, org_id),
        )
        # Ordered by contact id so that a repeated send assigns the same places in the ramp.
        .order_by(Contact.id)
    )
    # Through the Core connection: plain rows, without the ORM's per-row result processing.
    members = session.connection().execute(stmt).all()
    keys = {to: suppression_key(to) for _, to in members if to}
    suppressed = _suppressed(session, org_id, set(keys.values()))
    recipients = Recipients(total=len(members))
    mailboxes: set[str] = set()
    for contact_id, to in members:
        if not to:
            recipients.skipped += 1
        elif (mailbox := keys[to]) in suppressed:
            recipients.suppressed += 1
        elif mailbox in mailboxes:
            recipients.skipped += 1
        else:
            mailboxes.add(mailbox)
            recipients.deliverable.append((contact_id, to))
    return recipients


def _suppressed(session: Session, org_id: str, keys: set[str]) -> set[str]:
    """Which of ``keys`` the organization's suppression list holds: one probe of its unique
    index per key."""
    if not keys:
        return set()
    wanted = value_list(sorted(keys), is_postgres(session))
    stmt = (
        select(Suppression.address)
        .join(wanted, Suppression.address == wanted.c.value)
        .where(org_filter(Suppression, org_id))
    )
    return set(session.scalars(stmt))


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
