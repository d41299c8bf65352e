"""The SMTP messenger on its own: URL options, authentication, and a relay that is down."""

from __future__ import annotations

import email
import smtplib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email.policy import default
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.delivery.conftest import RecordingHandler, free_port
from tidings.delivery.transports import check_transport_url
from tidings.delivery.transports.base import (
    Deferred,
    Delivered,
    Email,
    Rejected,
    TransportConfigError,
)
from tidings.delivery.transports.smtp import SmtpMessenger, parse_smtp_url

# The auth sink below speaks AUTH in clear on loopback, which aiosmtpd rightly warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def _email(n: int = 0) -> Email:
    return Email(
        message_id=f"msg_{n:020d}",
        sender="news@acme.test",
        to="ann@example.com",
        subject="Hi",
        text="Hello\n",
        html=None,
        unsubscribe_url="http://127.0.0.1:8000/u/t",
        date=datetime.now(UTC),
    )


def test_url_options() -> None:
    config = parse_smtp_url("smtp://us%40er:p%3Ass@mail.example:2525?starttls=true")
    assert (config.host, config.port, config.username, config.password) == (
        "mail.example",
        2525,
        "us@er",
        "p:ss",
    )
    assert config.starttls == "true" and not config.implicit_tls
    secure = parse_smtp_url("smtps://mail.example")
    assert secure.implicit_tls and secure.port == 465
    assert parse_smtp_url("smtp://mail.example").port == 25
    with pytest.raises(TransportConfigError):
        parse_smtp_url("smtp://mail.example?starttls=maybe")
    for port in ("notaport", "99999"):
        with pytest.raises(TransportConfigError, match="not a number from 1 to 65535"):
            parse_smtp_url(f"smtp://u:p@mail.example:{port}")
    with pytest.raises(TransportConfigError):
        check_transport_url("mailgun://key@x", "email")
    with pytest.raises(TransportConfigError):
        check_transport_url("twilio://only-a-sid@api.twilio.com", "sms")
    for channel in ("email", "sms"):  # at start-up, not as a traceback at the first batch
        with pytest.raises(TransportConfigError, match="without a directory"):
            check_transport_url("file://", channel)


@pytest.fixture
def auth_sink() -> Iterator[tuple[RecordingHandler, int]]:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = data.login == b"us@er" and data.password == b"s3cret pass"
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.mark.parametrize("smtputf8", [False, True])
def test_an_internationalised_address_needs_smtputf8_and_spoils_nothing(smtputf8: bool) -> None:
    """Without SMTPUTF8 the address cannot travel: that message fails (not a bounce: the address
    is fine) before any command, and the messages around it on the connection are sent. It
    used to raise inside RCPT with MAIL already sent, and the next message met "503 nested
    MAIL command"."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    messenger = SmtpMessenger(f"smtp://127.0.0.1:{port}", "x")
    try:
        outcomes = [
            messenger.push(_email(0)),
            messenger.push(replace(_email(1), to="jörg@example.com")),
            messenger.push(_email(2)),
        ]
    finally:
        messenger.close()
        controller.stop()
    assert isinstance(outcomes[0], Delivered) and isinstance(outcomes[2], Delivered)
    if smtputf8:
        assert isinstance(outcomes[1], Delivered)
        assert [r.rcpt_tos for r in handler.received] == [
            ["ann@example.com"],
            ["jörg@example.com"],
            ["ann@example.com"],
        ]
        received = email.message_from_string(handler.received[1].data.decode(), policy=default)
        assert received["To"].addresses[0].addr_spec == "jörg@example.com"
    else:
        assert isinstance(outcomes[1], Rejected) and not outcomes[1].bounce
        assert "SMTPUTF8" in outcomes[1].reason
        assert len(handler.received) == 2


def test_credentials_from_the_url(auth_sink: tuple[RecordingHandler, int]) -> None:
    handler, port = auth_sink
    messenger = SmtpMessenger(f"smtp://us%40er:s3cret%20pass@127.0.0.1:{port}", "x")
    try:
        outcome = messenger.push(_email())
    finally:
        messenger.close()
    assert isinstance(outcome, Delivered)
    assert len(handler.received) == 1


def test_wrong_credentials_defer_the_whole_batch(auth_sink: tuple[RecordingHandler, int]) -> None:
    handler, port = auth_sink
    messenger = SmtpMessenger(f"smtp://us%40er:wrong@127.0.0.1:{port}", "x")
    try:
        outcomes = [messenger.push(_email(i)) for i in range(3)]
    finally:
        messenger.close()
    assert all(isinstance(o, Deferred) and "AUTH 535" in o.reason for o in outcomes)
    assert handler.received == []


def test_a_relay_that_is_down_is_tried_once_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[tuple[str, int]] = []

    class Down(smtplib.SMTP):
        def __init__(self, host: str, port: int, timeout: float) -> None:
            attempts.append((host, port))
            raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(smtplib, "SMTP", Down)
    messenger = SmtpMessenger("smtp://relay.example:25", "x")

    outcomes = [messenger.push(_email(i)) for i in range(5)]
    messenger.close()

    assert attempts == [("relay.example", 25)]
    assert all(isinstance(o, Deferred) and "Connection refused" in o.reason for o in outcomes)
