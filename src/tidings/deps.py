"""FastAPI dependencies: the request's session (the one owner of its transaction) and who is calling.

The session commits after the route returns and *before* the response is sent
(``scope="function"``), so a failed commit is an error response, never a false success.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from sqlalchemy.orm import Session

from tidings.auth import (
    Principal,
    authenticate_api_key,
    resolve_dashboard_session,
    tokens_equal,
    user_principal,
)
from tidings.config import get_settings
from tidings.db import POOL_CONNECTIONS, new_session, session_scope
from tidings.errors import (
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    unsupported_encoding,
)

SESSION_COOKIE = "tidings_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/v1/", "/api/v1/")


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session, made without touching the database: its connection is taken by the
    first statement, in the thread of the dependency or route that runs it. An ``async``
    dependency costs no thread-pool hop; a sync generator cost two (enter and exit), of the five
    that a list request made.

    Reads end here, on the event loop: committing a PostgreSQL read (autocommit) or a SQLite one
    (in-process) and returning the connection to the pool wait on nothing. A write's COMMIT waits
    on the database and runs in the thread pool."""
    reading = request.method in SAFE_METHODS
    async with database_turn(request.app.state, writing=not reading):
        session = new_session(read_only=reading)
        try:
            yield session
            if reading:
                session.commit()
            else:
                await run_in_threadpool(session.commit)
        except BaseException:
            if reading:
                session.rollback()
            else:
                await run_in_threadpool(session.rollback)
            raise
        finally:
            session.close()


@asynccontextmanager
async def database_turn(state: Any, *, writing: bool) -> AsyncIterator[None]:
    """A request waits here, on the event loop, until it may use the database (``state`` is the
    app's: ``request.app.state``; the idempotency middleware takes turns too): at most as many
    at once as the pool has connections, writers at most all but ``READ_CONNECTIONS`` of them
    (a flood of writes leaves reads their own), and on SQLite one writer (its single lock).

    A request holds its connection (and on SQLite a writer its lock, ``BEGIN IMMEDIATE``)
    across several trips through the thread pool: the key lookup, the route, the commit. When
    more requests came at once than there are threads (40), the waiting ones filled every thread
    (blocked on the pool, or on SQLite's lock), and those holding a connection or the lock found
    no thread to finish in. Everything stalled until the 30 s timeouts failed it: 60 concurrent
    writers got 503s on both backends. Waiting here takes no thread, so whoever holds a
    connection can always finish, and the rest go in turn."""
    if getattr(state, "connection_turns", None) is None:  # one per app, as is its event loop
        state.connection_turns = asyncio.Semaphore(POOL_CONNECTIONS)
        one_writer = get_settings().is_sqlite
        state.writer_turns = asyncio.Semaphore(1 if one_writer else WRITE_CONNECTIONS)
    async with AsyncExitStack() as turns:
        try:
            async with asyncio.timeout(TURN_TIMEOUT_SECONDS):
                if writing:  # first: a writer waiting for its turn holds no connection's
                    await turns.enter_async_context(state.writer_turns)
                await turns.enter_async_context(state.connection_turns)
        except TimeoutError:
            raise ServiceUnavailable("The server is busy; retry shortly.") from None
        yield


# How long a request waits for its turn before a 503 to retry: the pool's own timeout, which the
# wait for a connection had before it moved here.
TURN_TIMEOUT_SECONDS = 30
# Of the pool's connections, how many only reads may use: under a flood of writes a list still
# answers in its own time instead of queueing behind them.
READ_CONNECTIONS = 10
WRITE_CONNECTIONS = POOL_CONNECTIONS - READ_CONNECTIONS

DbSession = Annotated[Session, Depends(get_session, scope="function")]


async def json_body_type(
    request: Request, _caller: Annotated[Principal, Depends(api_principal)]
) -> None:
    """A request body in another content type than JSON is a 415 (DESIGN §2) that says what to
    send, rather than a 400 about "a valid dictionary". A body without a Content-Type is read as
    JSON (``app._public_api``); a request without a body passes whatever its headers say. The
    caller is checked first: a missing or wrong key is a 401, and a key without the route's
    scopes a 403, whatever the body (the lookup is the route's own, made once per request)."""
    check_route_scopes(request, _caller)
    if has_body(request) and (unsupported := unsupported_encoding(request)) is not None:
        raise unsupported
    content_type = request.headers.get("content-type")
    if content_type is None or not has_body(request):
        return
    media_type = media_type_of(content_type)
    if is_json(media_type):
        return
    raise UnsupportedMediaType(
        "send the request body as JSON, with 'Content-Type: application/json'",
        details={"contentType": media_type},
    )


def media_type_of(content_type: str) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return content_type.partition(";")[0].strip().lower()


def is_json(media_type: str) -> bool:
    """``application/json`` or any ``application/*+json`` (FastAPI reads both as JSON)."""
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() != "0"
    return "transfer-encoding" in request.headers


def bearer_token(request: Request) -> str | None:
    return _bearer(request.headers.get("authorization", ""))


def _bearer(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_principal(request: Request, session: DbSession) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise Unauthorized()
    principal = authenticate_api_key(session, token)
    if principal is None:
        raise Unauthorized("Invalid or revoked API key.")
    return principal


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits an API key holding ``scope`` (``write:X`` implies ``read:X``)."""

    async def dependency(principal: Annotated[Principal, Depends(api_principal)]) -> Principal:
        check_scope(principal, scope)
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    dependency.required_scopes = (scope,)  # type: ignore[attr-defined]
    return dependency


def check_scope(principal: Principal, scope: str) -> None:
    """403 unless the key holds ``scope``: for a route whose request decides what it reads."""
    if not principal.has_scope(scope):
        raise Forbidden(f"This API key lacks the '{scope}' scope.", details={"required": scope})


def require_scopes(*scopes: str) -> Callable[..., Awaitable[Principal]]:
    """Like ``require_scope`` for routes that need several (e.g. import: audiences and contacts)."""

    async def dependency(principal: Annotated[Principal, Depends(api_principal)]) -> Principal:
        missing = [s for s in scopes if not principal.has_scope(s)]
        if missing:
            raise Forbidden(
                f"This API key lacks the scope(s): {', '.join(missing)}.",
                details={"required": list(scopes)},
            )
        return principal

    dependency.__name__ = "require_" + "_".join(s.replace(":", "_") for s in scopes)
    dependency.required_scopes = scopes  # type: ignore[attr-defined]
    return dependency


def required_scopes(dependant: Dependant) -> tuple[str, ...]:
    """The scopes a route's dependency tree demands (``require_scope(s)`` mark their dependency);
    the OpenAPI document shows them as ``x-required-scopes`` and a test holds the routes to them."""
    found: list[str] = []
    for sub in dependant.dependencies:
        found.extend(getattr(sub.call, "required_scopes", ()))
        found.extend(required_scopes(sub))
    return tuple(dict.fromkeys(found))


def check_route_scopes(request: Request, principal: Principal) -> None:
    """403 unless the key holds every scope the matched route demands."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    for scope in required_scopes(dependant) if dependant is not None else ():
        check_scope(principal, scope)


async def check_public_caller(request: Request) -> None:
    """The 401 or 403 a public route gives a caller it refuses, for a request FastAPI refused
    before the route's own checks ran (``errors.refused_before_dependencies``)."""
    if not request.url.path.startswith(PUBLIC_PREFIXES):
        return

    def check() -> None:
        with session_scope() as session:
            check_route_scopes(request, api_principal(request, session))

    await run_in_threadpool(check)


def dashboard_principal(request: Request, session: DbSession) -> Principal | None:
    """The logged-in dashboard user, or None. Unsafe methods must carry the session's CSRF token
    (header ``X-CSRF-Token`` or form field ``csrf_token``, checked by the caller for forms)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    resolved = resolve_dashboard_session(session, token)
    if resolved is None:
        return None
    row, user = resolved
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not tokens_equal(sent, row.csrf_token):
            raise Forbidden("Missing or invalid CSRF token; reload the page and try again.")
    return user_principal(user)


def idempotency_owner(
    session: Session, path: str, authorization: str, session_token: str | None, csrf_token: str
) -> str | None:
    """Whose an ``Idempotency-Key`` is: the API key, dashboard user or internal token that the
    route at ``path`` admits, by the checks ``api_principal`` and ``internal_caller`` make (the
    middleware has headers, not a ``Request``); None for a caller the route refuses, who then
    gets its 401 or 403, never a stored answer.

    Keys used to be filed under the raw ``Authorization`` header and replayed before any check:
    a header the internal routes ignore (a proxy's ``Basic``) made one namespace for every
    organization's owners, a revoked key or an ended session still got its stored answers, and
    ``bearer`` and ``Bearer`` were two callers."""
    token = _bearer(authorization)
    if not path.startswith("/api/internal/"):
        principal = authenticate_api_key(session, token) if token else None
        return f"key:{principal.actor_id}" if principal else None
    if token is not None:
        internal = get_settings().internal_token
        return "internal" if internal and tokens_equal(token, internal) else None
    resolved = resolve_dashboard_session(session, session_token) if session_token else None
    if resolved is None:
        return None
    row, user = resolved
    admitted = user.role == "owner" and csrf_token and tokens_equal(csrf_token, row.csrf_token)
    return f"user:{user.id}" if admitted else None


def internal_caller(request: Request, session: DbSession) -> Principal | None:
    """The internal surface: an owner's dashboard session (with CSRF) or the internal token.

    Returns None for the internal token, which is not tied to an organization: the route takes the
    organization from the object it addresses. A public API key is refused with 403.
    """
    settings = get_settings()
    token = bearer_token(request)
    if token is not None:
        if settings.internal_token and tokens_equal(token, settings.internal_token):
            return None
        if authenticate_api_key(session, token) is not None:
            raise Forbidden("Public API keys cannot call internal routes; use /v1/... instead.")
        raise Unauthorized("Invalid internal token.")
    principal = dashboard_principal(request, session)
    if principal is None:
        raise Unauthorized("Log in to the dashboard, or send the internal token.")
    if principal.role != "owner":
        raise Forbidden("Only owners of the organization can do this.")
    return principal
