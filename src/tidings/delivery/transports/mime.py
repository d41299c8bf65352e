"""One email as RFC 5322 bytes, shared by the SMTP and file transports.

Built with ``email.message.EmailMessage`` and ``policy.SMTP`` (CRLF line ends, RFC 2047 encoded
words, folded long headers). Every header value is stripped of CR and LF first, so no variable that
reached a subject, a name or an address can start a header of its own (``"\\r\\nBcc: x"``).
"""

from __future__ import annotations

import html as html_lib
import re
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from urllib.parse import urlsplit

from tidings.delivery.transports.base import Email

_TAGS = re.compile(r"<[^>]+>")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def header_safe(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


@lru_cache(maxsize=16)
def message_id_domain(public_url: str) -> str:
    return urlsplit(public_url).hostname or "tidings.invalid"


def message_id_header(message_id: str, domain: str) -> str:
    """Derived from our message id alone, so a retry after a crash carries the same Message-ID and
    the receiving side can tell it is the same message."""
    return f"<{message_id}@{domain}>"


def text_from_html(html: str) -> str:
    """A plain-text part for an HTML-only template: mail clients that show text deserve words."""
    text = _TAGS.sub("", re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h\d>|</li>", "\n", html))
    return _BLANKS.sub("\n\n", html_lib.unescape(text)).strip() + "\n"


def build_email(email: Email, domain: str) -> bytes:
    """The whole message, serialised once; the transports send or write exactly these bytes."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = header_safe(email.sender)
    message["To"] = header_safe(email.to)
    message["Subject"] = header_safe(email.subject)
    message["Date"] = format_datetime(email.date)
    message["Message-ID"] = message_id_header(email.message_id, domain)
    message["List-Unsubscribe"] = f"<{header_safe(email.unsubscribe_url)}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = email.text
    if text is None and email.html is not None:
        text = text_from_html(email.html)
    message.set_content(text or "", subtype="plain", charset="utf-8")
    if email.html is not None:
        message.add_alternative(email.html, subtype="html", charset="utf-8")
    return message.as_bytes()
