"""``smtp://`` and ``smtps://``: a relay, one connection per batch.

``smtp://user:pass@host:port?starttls=auto|true|false`` (default ``auto``: STARTTLS when the server
offers it; ``true``: refuse to send in clear). ``smtps://`` is TLS from the first byte (port 465).
The SMTP transaction is driven command by command (MAIL, RCPT, DATA) rather than with
``sendmail()``, so a refusal of the recipient (a bounce) is told apart from a refusal of the message,
and the relay's answer to DATA (``250 … queued as X``) becomes the provider id.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from tidings.delivery.transports.base import (
    Deferred,
    Delivered,
    Email,
    Outcome,
    Outgoing,
    Rejected,
    TransportConfigError,
    short,
)
from tidings.delivery.transports.mime import build_email, message_id_header

TIMEOUT_SECONDS = 30  # per command: the worker leaves a push half its lease (``Worker``)


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # auto | true | false
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpConfig:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise TransportConfigError(f"expected smtp://host:port or smtps://host:port, got {url!r}")
    query = parse_qs(parts.query)
    starttls = (query.get("starttls") or ["auto"])[0].lower()
    starttls = {"1": "true", "yes": "true", "0": "false", "no": "false"}.get(starttls, starttls)
    if starttls not in ("auto", "true", "false"):
        raise TransportConfigError(f"starttls must be auto, true or false, got {starttls!r}")
    implicit_tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if implicit_tls else 25)
    except ValueError:  # not a number, or out of 0-65535
        raise TransportConfigError(
            "the port in the SMTP URL is not a number from 1 to 65535"
        ) from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class _Unusable(Exception):
    """The relay is reachable but cannot be used as configured (no STARTTLS, wrong credentials)."""


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _classify(stage: str, code: int, reply: bytes | str, *, recipient: bool = False) -> Outcome:
    reason = short(f"SMTP {code} on {stage}: {_text(reply)}")
    if 500 <= code < 600:
        return Rejected(reason, bounce=recipient)
    return Deferred(reason)


class SmtpMessenger:
    def __init__(self, url: str, domain: str) -> None:
        self.config = parse_smtp_url(url)
        self.domain = domain
        self._connection: smtplib.SMTP | None = None
        self._broken: str | None = None

    def push(self, message: Outgoing) -> Outcome:
        if not isinstance(message, Email):
            return Rejected("the SMTP transport carries email only")
        if self._broken is not None:
            # The relay could not be reached (or refused us) earlier in this batch: defer the rest
            # at once instead of waiting out a connection timeout per message.
            return Deferred(self._broken)
        payload = build_email(message, self.domain)
        try:
            connection = self._connect()
        except _Unusable as exc:
            # The installation's problem, not the message's: retry (failing after the last
            # attempt) rather than fail every message at once.
            self._broken = short(str(exc))
            return Deferred(self._broken)
        except (OSError, smtplib.SMTPException) as exc:
            # Refused, timed out, TLS failed, or a greeting other than 220: not this message's fault.
            self._drop()
            self._broken = short(f"SMTP connection to {self.config.host}:{self.config.port}: {exc}")
            return Deferred(self._broken)
        try:
            return self._transaction(connection, message, payload)
        except smtplib.SMTPResponseException as exc:  # the DATA command itself was refused
            self._reset(connection)
            return _classify("DATA", exc.smtp_code, exc.smtp_error)
        except (OSError, smtplib.SMTPException) as exc:
            # The connection broke mid-transaction: retry this one later; the next message
            # opens a new connection.
            self._drop()
            return Deferred(short(f"SMTP connection to {self.config.host} lost: {exc}"))
        except Exception:
            # Anything else (a bug) may leave a transaction open: the next message must not
            # find it ("503 nested MAIL command"), so it gets a new connection.
            self._drop()
            raise

    def _transaction(self, connection: smtplib.SMTP, email: Email, payload: bytes) -> Outcome:
        sender, recipient = _bare_address(email.sender), _bare_address(email.to)
        options: list[str] = []
        if not (sender + recipient).isascii():
            # An internationalised address (RFC 6531) travels only through a relay offering
            # SMTPUTF8; refused before any command, so the connection stays clean for the rest.
            if not connection.has_extn("smtputf8"):
                return Rejected(
                    short(f"the SMTP relay does not offer SMTPUTF8, which {recipient!r} needs")
                )
            options = ["SMTPUTF8", *(["BODY=8BITMIME"] if connection.has_extn("8bitmime") else [])]
        code, reply = connection.mail(sender, options)
        if code != 250:
            self._reset(connection)
            return _classify("MAIL FROM", code, reply)
        code, reply = connection.rcpt(recipient)
        if code not in (250, 251):
            self._reset(connection)
            return _classify("RCPT TO", code, reply, recipient=True)
        code, reply = connection.data(payload)
        if code != 250:
            self._reset(connection)
            return _classify("DATA", code, reply)
        return Delivered(provider_id=_provider_id(reply, email.message_id, self.domain))

    def _connect(self) -> smtplib.SMTP:
        if self._connection is not None:
            return self._connection
        config = self.config
        connection: smtplib.SMTP
        if config.implicit_tls:
            connection = smtplib.SMTP_SSL(
                config.host,
                config.port,
                timeout=TIMEOUT_SECONDS,
                context=ssl.create_default_context(),
            )
        else:
            connection = smtplib.SMTP(config.host, config.port, timeout=TIMEOUT_SECONDS)
        self._connection = connection
        connection.ehlo()
        if not config.implicit_tls and config.starttls != "false":
            if connection.has_extn("starttls"):
                connection.starttls(context=ssl.create_default_context())
                connection.ehlo()
            elif config.starttls == "true":
                self._drop()
                raise _Unusable("the SMTP server does not offer STARTTLS (starttls=true)")
        if config.username is not None:
            try:
                _authenticate(connection, config.username, config.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                self._drop()
                reason = f"SMTP AUTH {exc.smtp_code}: {_text(exc.smtp_error)}"
                raise _Unusable(reason) from None
        return connection

    def _reset(self, connection: smtplib.SMTP) -> None:
        try:
            connection.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(OSError):
                connection.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


def _authenticate(connection: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH PLAIN when offered (every relay does), else whatever ``login`` negotiates. One
    mechanism, one answer: ``login`` would try the next mechanism after a refusal, and some servers
    never answer that second attempt."""
    advertised = connection.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" not in advertised:
        connection.login(username, password)
        return
    connection.user, connection.password = username, password
    connection.auth("PLAIN", connection.auth_plain)


def _bare_address(address: str) -> str:
    """``Name <a@b>`` → ``a@b`` for the envelope."""
    return parseaddr(address)[1] or address


def _provider_id(reply: bytes, message_id: str, domain: str) -> str:
    text = reply.decode("utf-8", "replace")
    marker = "queued as "
    if marker in text:
        return short(text.split(marker, 1)[1], 200)
    return message_id_header(message_id, domain)
