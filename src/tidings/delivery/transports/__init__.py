"""Transports: turn a transport URL into a ``Messenger`` for one batch.

Email: ``smtp://``, ``smtps://``, ``file://`` (default). SMS: ``twilio://``, ``file://`` (default).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tidings.delivery.transports.base import Messenger, TransportConfigError
from tidings.delivery.transports.file import FileMessenger, directory_of
from tidings.delivery.transports.smtp import SmtpMessenger, parse_smtp_url
from tidings.delivery.transports.twilio import TwilioMessenger

EMAIL_SCHEMES = ("smtp", "smtps", "file")
SMS_SCHEMES = ("twilio", "file")


def check_transport_url(url: str, channel: str) -> None:
    """Refuse a transport URL the worker cannot use, at start-up, with the URL's fix."""
    scheme = urlsplit(url).scheme
    allowed = EMAIL_SCHEMES if channel == "email" else SMS_SCHEMES
    if scheme not in allowed:
        raise TransportConfigError(
            f"{channel} transport {scheme or url!r} is not supported; use one of "
            + ", ".join(f"{s}://" for s in allowed)
        )
    if scheme in ("smtp", "smtps"):
        parse_smtp_url(url)
    if scheme == "twilio":
        TwilioMessenger(url, None)
    if scheme == "file":
        directory_of(url)


def is_local(url: str) -> bool:
    """``file://`` writes on this machine. There is no connection to wait on, so parallel writers
    only contend for the interpreter (measured: one writer 2,150 messages/s to a disk outbox, four
    1,350 to 1,700), and a message written again replaces its own file, so a worker that dies before
    recording what it wrote cannot deliver anything twice."""
    return urlsplit(url).scheme == "file"


def open_messenger(url: str, *, domain: str, sms_api_base_url: str | None = None) -> Messenger:
    """A messenger for one batch; it connects on its first message and must be closed."""
    scheme = urlsplit(url).scheme
    if scheme in ("smtp", "smtps"):
        return SmtpMessenger(url, domain)
    if scheme == "twilio":
        return TwilioMessenger(url, sms_api_base_url)
    if scheme == "file":
        return FileMessenger(url, domain)
    raise TransportConfigError(f"unsupported transport URL {url!r}")
