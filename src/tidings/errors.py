"""The one error type and the one error envelope: ``{"error": {"code", "message", "details"}}``.

Domain errors subclass ``ApiError`` (never a web-framework or validation-library class) and carry
their status and code; ``install_error_handlers`` turns them, FastAPI's validation errors, unknown
routes and unexpected failures into the same envelope.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger("tidings.errors")

# Serialization failure and deadlock: the transaction was rolled back whole (not 40003,
# "statement completion unknown", after which a retry may repeat what was done).
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ApiError(Exception):
    status_code = 400
    code = "bad_request"
    message = "The request is not valid."
    # Answered with ``Retry-After``: the same request may well succeed in a moment (and an
    # ``Idempotency-Key`` does not keep the answer, so the retry runs).
    retry_after = False

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details


class BadRequest(ApiError):
    status_code, code = 400, "bad_request"


class ValidationFailed(ApiError):
    status_code, code = 400, "validation_error"


class Unauthorized(ApiError):
    status_code, code = 401, "unauthorized"
    message = "Missing or invalid API key: send 'Authorization: Bearer <key>'."


class Forbidden(ApiError):
    status_code, code = 403, "forbidden"


class NotFound(ApiError):
    status_code, code = 404, "not_found"


class Conflict(ApiError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code, code = 415, "unsupported_media_type"


class Unprocessable(ApiError):
    status_code, code = 422, "unprocessable"


class RateLimited(ApiError):
    status_code, code = 429, "rate_limited"
    retry_after = True


class ServiceUnavailable(ApiError):
    status_code, code = 503, "service_unavailable"
    retry_after = True


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)  # always sent

    code: str
    message: str
    details: Any = None


class ErrorEnvelope(BaseModel):
    """The shape of every error response; routes declare it in ``responses=`` for the OpenAPI doc."""

    error: ErrorBody


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented with the envelope."""
    return {status: {"model": ErrorEnvelope} for status in statuses}


def envelope(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}}, status_code=status
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
}


# How pydantic names a branch of a union in an error's location (``name.function-after[...]``,
# ``name.none``): part of its schema, not of the request, so it is left out of ``field``.
_UNION_BRANCH = re.compile(r"[a-z-]+\[.*\]|none|str|int|float|bool|list|dict")


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """One entry per wrong field, named as the client spelt it. Where a field may be null, the
    value fails both branches of its union; the null branch's "Input should be None" is dropped
    when the other branch says what is wrong."""
    details: list[dict[str, Any]] = []
    for err in exc.errors():
        where, *path = err.get("loc", ()) or ("",)
        if err.get("type") == "json_invalid":
            path = []  # its location is a character of the body
        field = ".".join(
            str(part)
            for part in path
            if not (isinstance(part, str) and _UNION_BRANCH.fullmatch(part))
        )
        detail = {"field": field, "in": str(where), "message": _readable(err, field)}
        if detail not in details:
            details.append(detail)
    fields_with_a_reason = {d["field"] for d in details if d["message"] != _NOT_NULL}
    return [
        d for d in details if d["message"] != _NOT_NULL or d["field"] not in fields_with_a_reason
    ]


_NOT_NULL = "Input should be None"


def _readable(err: Any, field: str) -> str:
    """pydantic's message, or what it means where it names the body as a whole."""
    kind = err.get("type")
    if kind == "json_invalid":
        reason = (err.get("ctx") or {}).get("error", "")
        position = err.get("loc", ())[-1]
        return f"The request body is not valid JSON ({reason} at character {position})."
    if kind in ("too_long", "too_short") and isinstance(err.get("input"), str):
        # A string under a constraint pydantic applies after a validator: its message counts
        # "items".
        ctx = err.get("ctx") or {}
        bound = "most" if kind == "too_long" else "least"
        size = ctx.get("max_length" if kind == "too_long" else "min_length")
        return f"Value should have at {bound} {size} characters, not {len(err['input'])}"
    if not field and err.get("loc", ())[:1] == ("body",):
        if kind == "missing":
            return "The request needs a JSON body."
        if kind in ("model_attributes_type", "dict_type"):
            return "The request body must be a JSON object."
    return str(err.get("msg", ""))


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path. Each method of a path is its own
    route, so the 405 of the first route that matched the path would name only that one's.
    ``HEAD`` goes with ``GET`` (``middleware.HeadAsGetMiddleware``)."""
    served = {
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    }
    if "GET" in served:
        served.add("HEAD")
    return [method for method in HTTP_METHODS if method in served]


def api_error_response(exc: ApiError) -> JSONResponse:
    response = envelope(exc.status_code, exc.code, exc.message, exc.details)
    if exc.retry_after:
        response.headers["Retry-After"] = "1"
    if exc.status_code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"  # RFC 6750 §3: how to authenticate
    return response


def refused_before_dependencies(exc: RequestValidationError) -> bool:
    """FastAPI reads a JSON body before a route's dependencies run, and refuses one that is not
    JSON at once: the caller was not checked yet."""
    return any(err.get("type") == "json_invalid" for err in exc.errors())


# FastAPI's 400 for a body it could not decode at all (not UTF-8, nested past Python's recursion
# limit, compressed), raised like ``json_invalid`` before the route's dependencies run.
BODY_NOT_DECODED = "There was an error parsing the body"


def unsupported_encoding(request: Request) -> UnsupportedMediaType | None:
    """A 415 for a body sent with a ``Content-Encoding`` (RFC 7694 §3): none is decoded, so a
    compressed body was read as garbage, and one merely labelled ``br`` was taken as it was."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    return UnsupportedMediaType(
        f"Content-Encoding {encoding!r} is not supported; send the body uncompressed",
        details={"contentEncoding": encoding},
    )


def _undecodable_body(request: Request) -> ApiError:
    return unsupported_encoding(request) or BadRequest(
        "The request body could not be read as JSON: send it as UTF-8 text, nested at most a "
        "few hundred levels deep."
    )


CallerCheck = Callable[[Request], Awaitable[None]]


def install_error_handlers(app: FastAPI, check_caller: CallerCheck | None = None) -> None:
    """``check_caller`` raises the route's 401 or 403 for a caller it would refuse; it runs
    before a body FastAPI refused is reported, so that who may not call a route learns that, not
    what is wrong with the body."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if refused_before_dependencies(exc):
            refused = await _caller_refusal(request)
            if refused is not None:
                return refused
            if (unsupported := unsupported_encoding(request)) is not None:
                return api_error_response(unsupported)
        details = _validation_details(exc)
        first = details[0] if details else {"field": "", "message": "invalid request"}
        where = f"'{first['field']}': " if first["field"] else ""
        return envelope(400, "validation_error", f"{where}{first['message']}", details)

    async def _caller_refusal(request: Request) -> JSONResponse | None:
        if check_caller is None:
            return None
        try:
            await check_caller(request)
        except ApiError as refusal:
            return api_error_response(refusal)
        return None

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == BODY_NOT_DECODED:
            refused = await _caller_refusal(request)
            return refused or api_error_response(_undecodable_body(request))
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code
        if exc.status_code == 404 and message == "Not Found":
            message = "No such route. See /docs for the API."
        headers = dict(exc.headers or {})
        allowed = allowed_methods(request) if "Allow" in headers else []
        if allowed:  # a route's 405; the static files' own keeps its "GET, HEAD"
            headers["Allow"] = ", ".join(allowed)
            choices = " or ".join(filter(None, (", ".join(allowed[:-1]), allowed[-1])))
            message = f"{request.method} is not allowed here; use {choices}."
        response = envelope(exc.status_code, code, message)
        for name, value in headers.items():
            response.headers[name] = value
        return response

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)  # every connection busy for pool_timeout seconds
    async def _database_down(_: Request, exc: OperationalError | PoolTimeout) -> JSONResponse:
        # The driver's class names the cause (DeadlockDetected, ConnectionTimeout, ...) and
        # carries no data, unlike the message, which may quote parameters.
        cause = getattr(exc, "orig", None) or exc
        if getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES:
            # PostgreSQL rolled this request back for a concurrent one touching the same rows.
            # Not an outage, and nothing was written: retrying is safe.
            log.info("transaction rolled back: %s", type(cause).__name__)
            response = envelope(
                409,
                "conflict",
                "Another change to the same data happened at the same time; retry the request.",
            )
            response.headers["Retry-After"] = "1"
            return response
        log.warning("database unavailable: %s", type(cause).__name__)
        # SQLite's one write lock, held past the busy timeout by other writers, is not an outage.
        busy = "database is locked" in str(cause)
        what = "busy with other writes" if busy else "unavailable"
        response = envelope(503, "service_unavailable", f"The database is {what}; retry shortly.")
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if "NUL" in str(exc.orig):
            # PostgreSQL text cannot hold U+0000: a clear 400 rather than a 500.
            return envelope(400, "bad_request", "Text may not contain NUL (U+0000) characters.")
        if exc.connection_invalidated:
            return await _database_down(_, OperationalError("", {}, exc.orig or exc))
        log.exception("database error")
        return envelope(500, "internal_error", "An unexpected error occurred.")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return envelope(500, "internal_error", "An unexpected error occurred.")
