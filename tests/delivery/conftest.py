"""Real sinks for delivery tests: an SMTP server (aiosmtpd) and a Twilio-compatible HTTP API, both
on loopback, recording what they receive and answering as a test tells them to."""

from __future__ import annotations

import asyncio
import base64
import email
import json
import secrets
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.orm import Session

from tests.factories import make_audience, make_campaign, make_contact, make_org
from tidings.config import get_settings
from tidings.delivery.service import build_worker
from tidings.delivery.worker import Tally
from tidings.models import Campaign


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class RecordingHandler:
    """Records every accepted message. ``rcpt_replies``/``data_replies`` are answered first, one
    per transaction (e.g. ``"451 try later"`` once, then normal service)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rcpt_replies: deque[str] = deque()
        self.data_replies: deque[str] = deque()
        self.data_delay = 0.0
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.popleft()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_replies:
            return self.data_replies.popleft()
        with self.lock:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return f"250 2.0.0 Ok: queued as Q{secrets.token_hex(4)}"

    def message_ids(self) -> list[str]:
        return [str(r.message["Message-ID"]) for r in self.received]


@dataclass
class SmtpSink:
    handler: RecordingHandler
    url: str


@pytest.fixture
def smtp_sink(monkeypatch: pytest.MonkeyPatch, settings_env: None) -> Iterator[SmtpSink]:
    """A real SMTP server on loopback; the email transport points at it."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    url = f"smtp://127.0.0.1:{port}"
    monkeypatch.setenv("TIDINGS_EMAIL_TRANSPORT", url)
    get_settings.cache_clear()
    try:
        yield SmtpSink(handler, url)
    finally:
        controller.stop()


@dataclass(frozen=True)
class SmsRequest:
    path: str
    auth: tuple[str, str]
    form: dict[str, str]


class FakeTwilio(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TwilioHandler)
        self.requests: list[SmsRequest] = []
        self.replies: deque[tuple[int, dict[str, Any]]] = deque()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _TwilioHandler(BaseHTTPRequestHandler):
    server: FakeTwilio

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        _scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        self.server.requests.append(SmsRequest(self.path, (user, password), form))
        if self.server.replies:
            status, body = self.server.replies.popleft()
        else:
            status, body = 201, {"sid": f"SM{secrets.token_hex(16)}", "status": "queued"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch, settings_env: None) -> Iterator[FakeTwilio]:
    server = FakeTwilio()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TIDINGS_SMS_TRANSPORT", "twilio://AC123:secret-token@api.twilio.test")
    monkeypatch.setenv("TIDINGS_SMS_API_BASE_URL", server.base_url)
    get_settings.cache_clear()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def senderless_sms_campaign(db: Session) -> Campaign:
    """An SMS campaign to one contact that names no sender (and the settings name none)."""
    org = make_org(db)
    person = make_contact(db, org, phone="+14155550100")
    audience = make_audience(db, org, members=[person])
    campaign, _ = make_campaign(
        db, org, audience, [person], channel="sms", html=None, text="Hi", from_address=None
    )
    return campaign


def drain(**overrides: Any) -> Tally:
    """What ``tidings worker --drain`` does, in this process."""
    worker = build_worker(get_settings(), **overrides)
    try:
        return worker.drain()
    finally:
        worker.close()


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """Set ``TIDINGS_<NAME>`` variables for this test and reload the settings."""
    for name, value in env.items():
        monkeypatch.setenv(f"TIDINGS_{name.upper()}", value)
    get_settings.cache_clear()


def fresh(db: Session) -> None:
    """Forget what this session read: end its transaction (a new snapshot, which matters on SQLite
    in WAL mode) and expire its objects, so the next read shows what the worker committed."""
    db.rollback()
    db.expire_all()
