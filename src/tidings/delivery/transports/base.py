"""What the worker hands a transport, and what a transport answers.

Transports know nothing about the database: they get a composed message (addresses and rendered
content) and answer with one ``Outcome``. The worker knows nothing about SMTP or HTTP: it opens a
``Messenger`` per batch, ``push``es every message through it, and ``close``s it. That split is
listmonk's (``internal/manager`` depends only on a store and a messenger).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Email:
    message_id: str  # our ``msg_…`` id: file names, Message-ID and the provider's reference
    sender: str
    to: str
    subject: str
    text: str | None
    html: str | None
    unsubscribe_url: str
    date: datetime


@dataclass(frozen=True)
class Sms:
    message_id: str
    sender: str | None  # None: no sender configured; an outbox records that, an SMS API refuses it
    to: str
    body: str


Outgoing = Email | Sms


@dataclass(frozen=True)
class Delivered:
    provider_id: str


@dataclass(frozen=True)
class Rejected:
    """A permanent failure: trying again would fail the same way. ``bounce`` marks the recipient
    itself as refused (an SMTP 5xx on RCPT), which puts the address on the suppression list."""

    reason: str
    bounce: bool = False


@dataclass(frozen=True)
class Deferred:
    """A transient failure (connection refused, SMTP 4xx, HTTP 5xx/429): retry later."""

    reason: str


Outcome = Delivered | Rejected | Deferred


class Messenger(Protocol):
    """One batch's connection to a provider: opened lazily, reused for every message, closed once."""

    def push(self, message: Outgoing) -> Outcome: ...

    def close(self) -> None: ...


class TransportConfigError(ValueError):
    """A transport URL that cannot work; raised when the worker starts, not per message."""


def short(reason: str, limit: int = 500) -> str:
    """Provider answers become stored error text: one line, bounded."""
    return " ".join(reason.split())[:limit]
