"""One email as RFC 5322 bytes, shared by the SMTP and file transports; serialised once.

Two writers produce the same message:
- ``_write_fast`` (the usual case) lays out the headers and the MIME structure itself, encoding the
  bodies as quoted-printable with ``binascii`` and non-ASCII or long headers with RFC 2047 encoded
  words (``email.header.Header``). ``email.message.EmailMessage`` with ``policy.SMTP`` costs about a
  millisecond per message, mostly in its header registry — a third of the worker's budget at
  3,000 messages a second — for a message whose shape never changes.
- ``_write_stdlib`` (``EmailMessage``) handles what the fast writer does not: addresses of
  another shape (a quoted local part). Tests parse both writers' output with the stdlib parser.

An address whose local part is not ASCII (RFC 6531, ``jörg@example.com``; domains are stored as
IDNA) is written as UTF-8, as RFC 6532 has it, and needs a relay that offers SMTPUTF8
(``smtp.py``): an RFC 2047 encoded word inside an address is not an address.

Every header value is stripped of CR and LF first, so no variable that reached a subject, a name or
an address can start a header of its own (``"\\r\\nBcc: x"``).
"""

from __future__ import annotations

import binascii
import html as html_lib
import re
from datetime import datetime
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from functools import lru_cache
from urllib.parse import urlsplit

from tidings.delivery.transports.base import Email

# A tag starts with a letter, "/" or "!" right after "<": "if x < 5" is text.
_TAGS = re.compile(r"<[A-Za-z/!?][^>]*>")
# What a reader never sees: the head (title, styles), scripts, styles in the body, comments.
_UNSEEN = re.compile(r"(?is)<!--.*?-->|<(head|script|style|template|title)\b[^>]*>.*?</\1\s*>")
_LINK = re.compile(
    r"""(?is)<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>(.*?)</a\s*>"""
)
# Where a line ends as the page shows it: a break, the end of a block, a table row.
_LINE_ENDS = re.compile(
    r"(?i)<br\b[^>]*>|<hr\b[^>]*>|</(?:p|div|h\d|li|tr|table|ul|ol|blockquote|section|article)\s*>"
)
_CELL_ENDS = re.compile(r"(?i)</t[dh]\s*>")
_SPACES = re.compile(r"[ \t]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
# After escaping: ``&amp;`` stays inside the address, ``&lt;`` / ``&gt;`` / ``&quot;`` end it, and
# so does punctuation that ends a sentence ("see https://x.test.").
_URL = re.compile(r"https?://(?:[^\s&<>\"']|&amp;)*(?:[^\s&<>\"'.,;:!?)]|&amp;)")
_ADDR = re.compile(r"(?P<address>[^\s<>@\"(),;:]+@[^\s<>@\"(),;:]+)")
_NAME_ADDR = re.compile(r"(?P<name>.*?)\s*<" + _ADDR.pattern + ">")
_MAX_PLAIN_HEADER = 78  # RFC 5322's SHOULD; longer or non-ASCII values become encoded words
_MAX_BODY_LINE = 990  # under RFC 5322's 998 octets; longer lines go quoted-printable


def header_safe(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


@lru_cache(maxsize=16)
def message_id_domain(public_url: str) -> str:
    host = urlsplit(public_url).hostname or "tidings.invalid"
    return host if host.isascii() else host.encode("idna").decode("ascii")


def message_id_header(message_id: str, domain: str) -> str:
    """Derived from our message id alone, so a retry after a crash carries the same Message-ID and
    the receiving side can tell it is the same message."""
    return f"<{message_id}@{domain}>"


def text_from_html(html: str) -> str:
    """A plain-text part for an HTML-only template: the words a reader sees, a line per block or
    table row, and each link's address after its text (``Unsubscribe (https://...)``): the text
    part lost every link, the unsubscribe link with them, and showed the title and CSS."""
    text = _LINK.sub(_link_as_text, _UNSEEN.sub("", html))
    text = _CELL_ENDS.sub(" ", _LINE_ENDS.sub("\n", text))
    text = html_lib.unescape(_TAGS.sub("", text))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip() + "\n"


def _link_as_text(match: re.Match[str]) -> str:
    href = html_lib.unescape(next(g for g in match.groups()[:3] if g is not None).strip())
    words = " ".join(html_lib.unescape(_TAGS.sub("", match[4])).split())
    if not href or href.startswith(("#", "javascript:")) or href in (words, f"mailto:{words}"):
        return match[4]
    # Escaped again: the text is still HTML until the tags are stripped and entities read.
    return f"{match[4]} ({html_lib.escape(href)})" if words else html_lib.escape(href)


def html_from_text(text: str) -> str:
    """An HTML part for a text-only template (DESIGN §6: every email is multipart text+HTML): the
    text escaped, blank lines as paragraphs, line breaks kept, web addresses as links."""
    paragraphs = [p.strip("\n") for p in _PARAGRAPHS.split(text.replace("\r\n", "\n")) if p.strip()]
    body = "".join(
        "<p>" + _URL.sub(_link, html_lib.escape(p)).replace("\n", "<br>\n") + "</p>\n"
        for p in paragraphs
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"></head><body>\n{body}</body></html>\n'
    )


def _link(match: re.Match[str]) -> str:
    return f'<a href="{match[0]}">{match[0]}</a>'


def build_email(email: Email, domain: str) -> bytes:
    """The whole message; the transports send or write exactly these bytes. Always both parts:
    a template with one of them gets the other derived from it."""
    sender = _sender_mailbox(email.sender)
    to = _mailbox(email.to)
    text = email.text
    if text is None:
        text = text_from_html(email.html or "")
    html = email.html if email.html is not None else html_from_text(text)
    if sender is None or to is None or not email.unsubscribe_url.isascii():
        return _write_stdlib(email, domain, text, html)
    return _write_fast(email, domain, sender, to, text, html)


def _mailbox(value: str) -> str | None:
    """``Name <addr>`` or ``addr``, rewritten with the name quoted or encoded as needed; None for
    anything else (left to the stdlib writer)."""
    value = header_safe(value)
    match = _NAME_ADDR.fullmatch(value) or _ADDR.fullmatch(value)
    if match is None:
        return None
    name, address = _unquoted(match.groupdict().get("name") or ""), match["address"]
    return f"{_display_name(name)} <{address}>" if name else address


def _display_name(name: str) -> str:
    """Quoted as needed, or RFC 2047 encoded: when not ASCII, and when it looks like an encoded
    word itself (``=?utf-8?q?PayPal?=``), which a mail client would decode into what it spells.
    The address after it may be UTF-8 (an internationalised one), which ``formataddr`` refuses,
    so it formats the name alone."""
    if "=?" in name or not name.isascii():
        return Header(name, "utf-8").encode(linesep="\r\n")  # folded as every header line
    return formataddr((name, "x@x")).removesuffix(" <x@x>")


def _unquoted(name: str) -> str:
    """A display name as meant: the send call stores ``"Acme, Inc." <a@b>`` quoted, and a name
    quoted again showed its quotes in mail clients."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


# A batch has a handful of senders and one ``date``: each is formatted once, not per message.
_sender_mailbox = lru_cache(maxsize=64)(_mailbox)


@lru_cache(maxsize=8)
def _date_header(date: datetime) -> bytes:
    return _header("Date", format_datetime(date))


def _header(name: str, value: str) -> bytes:
    """``value`` as it is when it is short ASCII, else as RFC 2047 encoded words. So is text that
    looks like an encoded word (``=?utf-8?q?…?=`` from a CSV cell): a mail client would decode
    it into whatever it spells."""
    line = f"{name}: {value}"
    if value.isascii() and len(line) <= _MAX_PLAIN_HEADER and "=?" not in value:
        return line.encode("ascii") + b"\r\n"
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _body(text: str, boundary: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, encoded body with CRLF line ends). Plain ASCII with sane line
    lengths goes as it is (``7bit``); anything else as quoted-printable, which keeps lines under 76
    characters and turns every "=" into "=3D" — so no encoded line can look like our boundary."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    if not normalised.endswith("\n"):
        normalised += "\n"
    if (
        normalised.isascii()
        and boundary not in normalised
        and max(map(len, normalised.split("\n"))) <= _MAX_BODY_LINE
    ):
        return "7bit", normalised.encode("ascii").replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(normalised.encode("utf-8"), istext=True)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


def _part(subtype: str, text: str, boundary: str) -> bytes:
    encoding, body = _body(text, boundary)
    headers = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return headers.encode("ascii") + body


def _write_fast(email: Email, domain: str, sender: str, to: str, text: str, html: str) -> bytes:
    head = b"".join(
        (
            # ASCII but for an internationalised address (formataddr encodes a non-ASCII name);
            # never re-encoded as a whole.
            f"From: {sender}\r\nTo: {to}\r\n".encode(),
            _header("Subject", header_safe(email.subject)),
            _date_header(email.date),
            _header("Message-ID", message_id_header(email.message_id, domain)),
            # A URL cannot be folded; it stays on one line (well under the 998-octet limit).
            b"List-Unsubscribe: <" + header_safe(email.unsubscribe_url).encode("ascii") + b">\r\n",
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            b"MIME-Version: 1.0\r\n",
        )
    )
    # "==" never occurs in quoted-printable output, and a 7bit body never contains the boundary.
    boundary = f"==tidings=={email.message_id}=="
    # The CRLF before a delimiter belongs to the delimiter (RFC 2046), not to the body before it.
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join(
        (
            head,
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode("ascii"),
            delimiter,
            _part("plain", text, boundary),
            delimiter,
            _part("html", html, boundary),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        )
    )


def _structured(value: str) -> Address | str:
    """An ``Address`` when the value has the shape of one, so the name is quoted as needed."""
    value = header_safe(value)
    match = _NAME_ADDR.fullmatch(value) or _ADDR.fullmatch(value)
    if match is None:
        return value
    try:
        name = _unquoted(match.groupdict().get("name") or "")
        return Address(display_name=name, addr_spec=match["address"])
    except ValueError:  # e.g. a non-ASCII local part: the header registry takes the text as is
        return value


# Lines up to RFC 5322's limit: at 78 the policy folded the List-Unsubscribe URL, which has no
# place to fold, into encoded words, and it was no longer a <URL>.
_STDLIB_POLICY = policy.SMTP.clone(max_line_length=998)


def _write_stdlib(email: Email, domain: str, text: str, html: str) -> bytes:
    message = EmailMessage(policy=_STDLIB_POLICY)
    # The subject, and the sender when it has the usual shape, as the fast writer writes them:
    # the policy would decode encoded-word look-alikes in them.
    head = _header("Subject", header_safe(email.subject))
    sender = _sender_mailbox(email.sender)
    if sender is None:
        message["From"] = _structured(email.sender)
    else:
        head = f"From: {sender}\r\n".encode() + head
    message["To"] = _structured(email.to)
    message["Date"] = format_datetime(email.date)
    message["Message-ID"] = message_id_header(email.message_id, domain)
    message["List-Unsubscribe"] = f"<{header_safe(email.unsubscribe_url)}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return head + message.as_bytes()
