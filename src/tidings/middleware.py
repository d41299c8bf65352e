"""Pure ASGI middleware: request body limits and ``Idempotency-Key`` replay.

Both wrap the whole app so that every route gets them without opting in. Pure ASGI (not
``BaseHTTPMiddleware``) so bodies stream through untouched when no limit or key applies.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import and_, delete, or_, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.config import get_settings
from tidings.db import session_scope
from tidings.deps import (
    CSRF_HEADER,
    SESSION_COOKIE,
    database_turn,
    idempotency_owner,
    is_json,
    media_type_of,
)
from tidings.errors import ServiceUnavailable
from tidings.models import IdempotencyKey
from tidings.timeutil import utcnow

IDEMPOTENT_PREFIXES = ("/v1/", "/api/v1/", "/api/internal/")
# Far longer than any request may run (imports and sends are bounded to 10,000 rows).
ABANDONED_AFTER = timedelta(minutes=10)
# How often a process sweeps out every caller's expired records (``purge_expired_idempotency_keys``).
PURGE_EVERY = timedelta(minutes=10)


class _BodyTooLarge(Exception):
    pass


def _error_body(status: int, code: str, message: str) -> bytes:
    # Compact, as every other answer's envelope (``errors.envelope``) is written.
    body = {"error": {"code": code, "message": message, "details": None}}
    return json.dumps(body, separators=(",", ":")).encode()


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_unavailable(send: Send, message: str) -> None:
    """The app's 503 (``errors``), for what fails here, outside the routes and their handlers."""
    body = _error_body(503, "service_unavailable", message)
    await _send_json(send, 503, body, [(b"retry-after", b"1")])


class HeadAsGetMiddleware:
    """``HEAD`` wherever ``GET`` is served (RFC 9110 §9.3.2): the request runs as a ``GET`` and
    its answer goes out without the body, headers (``Content-Length`` included) as they are.
    FastAPI routes answer the methods they declare only, so uptime monitors and load balancers
    checking ``HEAD /healthz`` got a 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


class BodyLimitMiddleware:
    """Refuses bodies above the limit with 413 before reading them whole: at once when
    ``Content-Length`` says so, otherwise as soon as the streamed bytes pass the limit."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        message = (
            f"Request body too large: at most {limit:,} bytes; "
            "split the data into smaller requests."
        )
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, 413, _error_body(413, "payload_too_large", message))
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return msg

        async def tracking_send(msg: Message) -> None:
            # Frameworks catch errors raised while reading a body and answer them themselves
            # (FastAPI: 400 "error parsing the body"); once the limit was passed, the answer is
            # the 413 whatever the app makes of it.
            nonlocal started
            if exceeded:
                if msg["type"] == "http.response.start" and not started:
                    started = True
                    await _send_json(send, 413, _error_body(413, "payload_too_large", message))
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, _error_body(413, "payload_too_large", message))


def _read_claim(owner: str, key: str) -> IdempotencyKey | None:
    with session_scope() as session:
        return session.get(IdempotencyKey, (owner, key))


def _claim(owner: str, key: str, request_hash: str) -> IdempotencyKey | None:
    """Claims the key for this request; returns the existing record when someone holds it already.
    Records older than the retention window are forgotten first, and so are claims still "in
    progress" after ``ABANDONED_AFTER``: their request died with its process, or the database
    went away before the answer could be recorded; without this the key would answer 409 until
    the retention window ran out."""
    if _purge_clock.due():
        purge_expired_idempotency_keys()
    now = utcnow()
    ttl = timedelta(hours=get_settings().idempotency_ttl_hours)
    with session_scope() as session:
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.owner == owner,
                IdempotencyKey.key == key,
                or_(
                    IdempotencyKey.created_at < now - ttl,
                    and_(
                        IdempotencyKey.status_code.is_(None),
                        IdempotencyKey.created_at < now - ABANDONED_AFTER,
                    ),
                ),
            )
        )
    try:
        with session_scope() as session:
            session.add(IdempotencyKey(owner=owner, key=key, request_hash=request_hash))
        return None
    except IntegrityError:
        return _read_claim(owner, key)


def _finish(owner: str, key: str, status: int, body: bytes) -> None:
    """One UPDATE, no read first: on SQLite a transaction that reads and then writes fails at once
    (SQLITE_BUSY_SNAPSHOT) when another connection wrote in between, which left the claim
    "in progress" under concurrent retries; a write-first transaction waits for the lock."""
    with session_scope() as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
            .values(status_code=status, response_body=body.decode("utf-8", errors="replace"))
        )


def _release(owner: str, key: str) -> None:
    with session_scope() as session:
        session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        )


class _Every:
    """``due()`` is true at most once per ``interval`` in this process, whichever thread asks."""

    def __init__(self, interval: timedelta) -> None:
        self.interval = interval.total_seconds()
        self._next = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return False
            self._next = now + self.interval
            return True


_purge_clock = _Every(PURGE_EVERY)


def purge_expired_idempotency_keys() -> int:
    """Forgets every caller's records older than the retention window. ``_claim`` forgets only
    the key it claims, so without this sweep a key never reused stays for ever: the table grew
    by one row per keyed POST."""
    ttl = timedelta(hours=get_settings().idempotency_ttl_hours)
    with session_scope() as session:
        result = session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - ttl)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def request_fingerprint(
    scope: Scope, content_type: bytes, body: bytes, content_encoding: bytes = b""
) -> str:
    """What makes a retry "the same request": the route, its query and the body's meaning. So
    ``/api/v1/...`` is ``/v1/...`` (the same routers, DESIGN §1), a Content-Type's parameters
    (``; charset=utf-8``) do not count, and a JSON body counts as the value it spells, not its
    whitespace or key order: a client that re-serialises its retry replays, not 409s."""
    path = scope["path"]
    if path.startswith("/api/v1/"):
        path = path.removeprefix("/api")
    # No Content-Type is read as JSON on /v1, so it is the same request as application/json.
    media_type = media_type_of(content_type.decode("latin-1")) or "application/json"
    if is_json(media_type):
        body = _canonical_json(body)
    digest = hashlib.sha256()
    for part in (scope["method"], path, scope.get("query_string", b"").decode(), media_type):
        digest.update(part.encode() + b"\0")
    # A Content-Encoding is refused (415): a retry without it is another request. Absent, it
    # adds nothing, so the fingerprints of requests without one are what they were.
    encoding = content_encoding.strip().lower()
    if encoding not in (b"", b"identity"):
        digest.update(b"content-encoding:" + encoding + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _canonical_json(body: bytes) -> bytes:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return body  # not JSON after all: the route answers it; compare the bytes
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")


class IdempotencyMiddleware:
    """``Idempotency-Key`` on POST: the first request's response is stored and replayed to a retry
    with the same key and body; the same key with another body (or while the first request still
    runs) is a 409. Keys belong to the caller the route admits (``deps.idempotency_owner``): an
    API key, a dashboard user or the internal token. Answers that ask for a retry (5xx, or any
    with ``Retry-After``) are not stored, so the retry runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(IDEMPOTENT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        raw_key = headers.get(b"idempotency-key")
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        session_token = _session_cookie(headers.get(b"cookie", b""))
        if raw_key is None or not (authorization or session_token):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        state = scope["app"].state
        try:
            async with database_turn(state, writing=False):
                owner = await run_in_threadpool(
                    _owner,
                    scope["path"],
                    authorization,
                    session_token,
                    headers.get(CSRF_HEADER.lower().encode(), b"").decode("latin-1"),
                )
            if owner is None:  # a caller the route refuses: its 401 or 403, nothing stored
                await self.app(scope, _replaying(body), send)
                return
            key = raw_key.decode("latin-1").strip()
            if not key or len(key) > 255:
                message = "Idempotency-Key must be 1 to 255 characters."
                await _send_json(send, 400, _error_body(400, "bad_request", message))
                return
            request_hash = request_fingerprint(
                scope,
                headers.get(b"content-type", b""),
                body,
                headers.get(b"content-encoding", b""),
            )
            # A turn like any request's (``deps.database_turn``): a thread blocked here waiting
            # for a connection or SQLite's lock would take one a turn holder needs to finish.
            async with database_turn(state, writing=True):
                existing = await run_in_threadpool(_claim, owner, key, request_hash)
        except ServiceUnavailable as exc:  # outside the routes: the app's handlers cannot see it
            await _send_unavailable(send, exc.message)
            return
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                await _send_unavailable(send, "The database is unavailable; retry shortly.")
                return
            raise
        if existing is not None:
            await _answer_existing(send, existing, request_hash)
            return
        await self._run_and_store(scope, body, send, owner, key)

    async def _run_and_store(
        self, scope: Scope, body: bytes, send: Send, owner: str, key: str
    ) -> None:
        state = scope["app"].state

        async def settle(step: Callable[..., None], *args: object) -> None:
            async with database_turn(state, writing=True):
                await run_in_threadpool(step, owner, key, *args)

        status = 500
        retry_later = False
        chunks: list[bytes] = []
        held: list[Message] = []

        async def holding_send(msg: Message) -> None:
            # Held back until the answer is recorded: a client that has its answer and retries
            # at once must get the replay, not "still in progress" (API answers are small).
            nonlocal status, retry_later
            if msg["type"] == "http.response.start":
                status = msg["status"]
                retry_later = any(name.lower() == b"retry-after" for name, _ in msg["headers"])
            elif msg["type"] == "http.response.body":
                chunks.append(msg.get("body", b""))
            held.append(msg)

        try:
            await self.app(scope, _replaying(body), holding_send)
        except BaseException:
            with contextlib.suppress(DBAPIError, ServiceUnavailable):
                await settle(_release)
            raise
        # If recording fails (the database went away after the route committed), the answer
        # still goes out; the claim stays "in progress" and is reclaimed after ABANDONED_AFTER.
        with contextlib.suppress(DBAPIError, ServiceUnavailable):
            # An answer that says "retry" (5xx, or a 409 for a deadlock with Retry-After) is not
            # the request's outcome: stored, the retry it asks for would get it again.
            if status >= 500 or retry_later:
                await settle(_release)
            else:
                await settle(_finish, status, b"".join(chunks))
        for msg in held:
            await send(msg)


async def _answer_existing(send: Send, existing: IdempotencyKey, request_hash: str) -> None:
    if existing.request_hash != request_hash:
        await _send_json(
            send,
            409,
            _error_body(
                409,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request; use a new key.",
            ),
        )
    elif existing.status_code is None:
        await _send_json(
            send,
            409,
            _error_body(
                409,
                "idempotency_key_in_progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
            ),
            [(b"retry-after", b"1")],
        )
    else:
        await _send_json(
            send,
            existing.status_code,
            (existing.response_body or "").encode(),
            [(b"idempotent-replayed", b"true")],
        )


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        msg = await receive()
        if msg["type"] == "http.request":
            parts.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                return b"".join(parts)
        elif msg["type"] == "http.disconnect":
            return b"".join(parts)


def _session_cookie(cookie_header: bytes) -> str | None:
    for part in cookie_header.split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == SESSION_COOKIE.encode():
            return value.decode("latin-1") or None
    return None


def _owner(path: str, authorization: str, session_token: str | None, csrf_token: str) -> str | None:
    with session_scope() as session:
        return idempotency_owner(session, path, authorization, session_token, csrf_token)


def _replaying(body: bytes) -> Receive:
    """The request's body, read already, for the app to read again."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


# The routes that take a CSV file: the public import, the internal one, the dashboard's drawer.
IMPORT_PATH = re.compile(
    r"(?:/v1|/api/v1|/overview)/audiences/[^/]+/import|/api/internal/audiences/[^/]+/import-csv"
)


def body_limit_for(path: str) -> int:
    """Imports may carry up to 10,000 rows; every other body is small. Only the import routes
    themselves: any path ending in ``/import`` (``/v1/contacts/import``, an id) took 16 MB that
    FastAPI then parsed as JSON before the caller was checked."""
    settings = get_settings()
    if IMPORT_PATH.fullmatch(path):
        return settings.max_import_bytes
    return settings.max_body_bytes
