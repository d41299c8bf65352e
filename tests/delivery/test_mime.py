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
    text_from_html,
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


def test_an_internationalised_address_is_written_as_utf8() -> None:
    """RFC 6532: the address itself in UTF-8 (the relay must offer SMTPUTF8), never an encoded
    word inside it; the unsubscribe link stays one <URL>."""
    long_link = "https://tidings.example/u/" + "t" * 120
    data = build_email(
        _email(to="josé@example.com", sender="Zoë <zoë@acme.test>", unsubscribe_url=long_link),
        "x",
    )
    _lines_ok(data)
    assert b"To: jos\xc3\xa9@example.com\r\n" in data
    # (The bytes parser reads headers as ASCII; an RFC 6532 message is UTF-8 text.)
    message = email.message_from_string(data.decode(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"].addresses[0].addr_spec == "josé@example.com"
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Zoë", "zoë@acme.test")
    assert message["List-Unsubscribe"] == f"<{long_link}>"
    assert _bodies(message)[0] == "Hi Ann\n"


def test_a_quoted_display_name_is_not_quoted_again() -> None:
    """The send call stores ``"Acme, Inc. (Support)" <…>``; a mail client showed the quotes."""
    sender = '"Acme, Inc. (Support) \\"EU\\"" <support@acme.test>'
    mail = _email(sender=sender)
    for data in (build_email(mail, "x"), _write_stdlib(mail, "x", "Hi\n", "<p>Hi</p>")):
        shown = _parse(data)["From"].addresses[0].display_name
        assert shown == 'Acme, Inc. (Support) "EU"'


def test_text_that_looks_like_an_encoded_word_is_encoded() -> None:
    """A CSV cell holding ``=?utf-8?q?…?=`` reaches the subject (or a sender's name) as that
    text, not as what a mail client would decode it into."""
    subject, name = "=?utf-8?q?fake?= header", "=?utf-8?q?PayPal?="
    sender = f"{name} <news@acme.test>"
    mail = _email(subject=subject, sender=sender, to='"odd box"@example.com')
    for data in (build_email(_email(subject=subject, sender=sender), "x"), build_email(mail, "x")):
        assert b": =?utf-8?q?fake?=" not in data and b": =?utf-8?q?PayPal?=" not in data
        message = _parse(data)
        assert message["Subject"] == subject
        assert message["From"].addresses[0].display_name == name


def test_the_stdlib_writer_keeps_a_long_unsubscribe_link_whole() -> None:
    long_link = "https://tidings.example/u/" + "t" * 120
    data = build_email(_email(to='"odd box"@example.com', unsubscribe_url=long_link), "x")
    assert f"List-Unsubscribe: <{long_link}>\r\n".encode() in data
    assert _parse(data)["To"].addresses[0].addr_spec == '"odd box"@example.com'


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


def test_a_long_encoded_sender_name_folds_with_crlf() -> None:
    """An encoded name too long for one line folds, and its fold is CRLF like every line's
    (hypothesis found a bare LF there)."""
    mail = _email(sender=f"{'Ünïcödé ' * 8}<news@acme.test>")
    data = build_email(mail, "x")
    _lines_ok(data)
    name = _parse(data)["From"].addresses[0].display_name
    assert name.split() == ["Ünïcödé"] * 8


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


def test_the_text_part_of_an_html_template_keeps_what_a_reader_sees() -> None:
    """Words, a line per block or table row, and each link's address: the unsubscribe link
    above all. Not the title, the CSS, scripts or comments; "x < 5" is text, not a tag."""
    html = (
        "<html><head><title>Newsletter</title><style>p { color: red; }</style></head><body>"
        '<p>Read our <a href="https://example.com/post?id=1&amp;x=2">latest <b>post</b></a>.</p>'
        "<table><tr><td>Hello</td><td>there</td></tr><tr><td>World</td></tr></table>"
        "<script>track()</script><!-- hidden --><p>If x < 5 and y > 3, win &amp; smile</p>"
        '<p><a href="https://x.test">https://x.test</a> <a href="#top">top</a></p>'
        "<p><a href='https://t.test/u/TOKEN'>Unsubscribe</a></p></body></html>"
    )
    assert text_from_html(html) == (
        "Read our latest post (https://example.com/post?id=1&x=2).\n"
        "Hello there\n"
        "World\n\n"
        "If x < 5 and y > 3, win & smile\n"
        "https://x.test top\n"
        "Unsubscribe (https://t.test/u/TOKEN)\n"
    )
