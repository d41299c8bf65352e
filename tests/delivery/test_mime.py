"""The email writer: whatever goes in, the stdlib parser reads back the same message."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.delivery.transports.base import Email
from tidings.delivery.transports.mime import (
    _write_stdlib,
    build_email,
    header_safe,
    html_from_text,
)

WHEN = datetime(2026, 5, 1, 13, 0, tzinfo=UTC)


def _email(**fields: object) -> Email:
    values: dict[str, object] = {
        "message_id": "msg_0123456789abcdef0123",
        "sender": "Acme News <news@acme.test>",
        "to": "ann@example.com",
        "subject": "Hello",
        "text": "Hi Ann\n",
        "html": "<p>Hi Ann</p>",
        "unsubscribe_url": "https://tidings.example/u/abc.def",
        "date": WHEN,
    }
    values.update(fields)
    return Email(**values)  # type: ignore[arg-type]


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _lines_ok(data: bytes) -> None:
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))


def _bodies(message: EmailMessage) -> tuple[str, str | None]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    # The parser keeps the wire's CRLF line ends; compare with Python's "\n".
    plain = text.get_content().replace("\r\n", "\n")
    return plain, html.get_content().replace("\r\n", "\n") if html is not None else None


def test_headers_and_structure() -> None:
    data = build_email(_email(), "tidings.example")
    message = _parse(data)

    _lines_ok(data)
    assert message["From"] == "Acme News <news@acme.test>"
    assert message["To"] == "ann@example.com"
    assert message["Subject"] == "Hello"
    assert message["Date"].datetime == WHEN
    assert message["Message-ID"] == "<msg_0123456789abcdef0123@tidings.example>"
    assert message["List-Unsubscribe"] == "<https://tidings.example/u/abc.def>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    assert _bodies(message) == ("Hi Ann\n", "<p>Hi Ann</p>\n")


def test_text_only_and_html_only() -> None:
    """DESIGN §6: every email is multipart text+HTML, whichever part the template has."""
    text_only = _parse(build_email(_email(html=None), "x"))
    assert text_only.get_content_type() == "multipart/alternative"
    plain, rich = _bodies(text_only)
    assert plain == "Hi Ann\n" and rich is not None and "<p>Hi Ann</p>" in rich

    html_only = _parse(build_email(_email(text=None, html="<p>Hi &amp; bye</p>"), "x"))
    assert html_only.get_content_type() == "multipart/alternative"
    assert _bodies(html_only) == ("Hi & bye\n", "<p>Hi &amp; bye</p>\n")


def test_injection_through_any_header_value_is_neutralised() -> None:
    data = build_email(
        _email(
            sender="Eve\r\nBcc: a@evil.test <news@acme.test>",
            subject="Hi\r\nBcc: b@evil.test",
            to="ann@example.com\r\nBcc: c@evil.test",
        ),
        "x",
    )
    message = _parse(data)
    assert message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: b@evil.test"
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))


def test_non_ascii_subject_name_and_bodies() -> None:
    message = _parse(
        build_email(
            _email(
                sender="Ünïcode Näme <news@acme.test>",
                subject="नमस्ते Ann — 20% off " + "long " * 30,
                text="Grüße\n" + "x" * 300 + "\n. a dot line\n",
                html="<p>Grüße ✓</p>",
            ),
            "x",
        )
    )
    assert message["Subject"] == "नमस्ते Ann — 20% off " + " ".join(["long"] * 30)
    assert message["From"].addresses[0].display_name == "Ünïcode Näme"
    assert _bodies(message) == ("Grüße\n" + "x" * 300 + "\n. a dot line\n", "<p>Grüße ✓</p>\n")


def test_non_ascii_address_uses_the_stdlib_writer() -> None:
    message = _parse(build_email(_email(to="josé@example.com"), "x"))
    assert message["To"] == "josé@example.com"
    assert _bodies(message)[0] == "Hi Ann\n"


@settings(max_examples=150, deadline=None)
@given(
    subject=st.text(max_size=200),
    name=st.text(max_size=60),
    text=st.text(max_size=500),
    html=st.one_of(st.none(), st.text(max_size=500)),
)
def test_any_content_reads_back_unchanged(
    subject: str, name: str, text: str, html: str | None
) -> None:
    mail = _email(subject=subject, sender=f"{name} <news@acme.test>", text=text, html=html)
    expected_html = html if html is not None else html_from_text(text)
    for data in (build_email(mail, "x"), _write_stdlib(mail, "x", text, expected_html)):
        _lines_ok(data)
        message = _parse(data)
        assert message["Message-ID"] == "<msg_0123456789abcdef0123@x>"
        assert message["Subject"] == header_safe(subject)
        assert message["From"].addresses[0].addr_spec == "news@acme.test"
        plain, rich = _bodies(message)
        assert _normal(plain) == _normal(text)
        assert message.get_content_type() == "multipart/alternative"
        assert rich is not None and _normal(rich) == _normal(expected_html)


def _normal(body: str) -> str:
    """Line ends are the transport's business: compare bodies modulo CR/LF style and a final
    newline."""
    return body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def test_html_from_text_escapes_keeps_lines_and_links_addresses() -> None:
    html = html_from_text(
        "Hi <Ann> & co,\nline two\n\n  \nRead https://x.test/a?b=1&c=2 now.\r\n"
        "Stop: https://t.example/u/abc.def.\n"
    )
    assert "<p>Hi &lt;Ann&gt; &amp; co,<br>\nline two</p>" in html
    assert '<a href="https://x.test/a?b=1&amp;c=2">https://x.test/a?b=1&amp;c=2</a> now.' in html
    assert '<a href="https://t.example/u/abc.def">https://t.example/u/abc.def</a>' in html
    assert html.count("<p>") == 2
    assert "<script" not in html_from_text('<script>alert("x")</script> https://a.test/"onload=x')
