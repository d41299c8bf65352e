"""``create_app()``: routers, error handlers, middleware.

The public routers are mounted at ``/v1`` and again at ``/api/v1`` (seed 000 uses the first, seed 002
the second). The OpenAPI document describes ``/v1``; ``/api/v1`` is the same API under another name.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from tidings import __version__
from tidings.audiences.router import router as audiences_router
from tidings.audit.router import router as audit_router
from tidings.campaigns.router import router as campaigns_router
from tidings.config import get_settings
from tidings.contacts.router import router as contacts_router
from tidings.dashboard.drawers import router as drawers_router
from tidings.dashboard.routes import STATIC_DIR, LoginRequired
from tidings.dashboard.routes import router as dashboard_router
from tidings.dashboard.send_drawer import router as send_drawer_router
from tidings.db import get_engine
from tidings.delivery.unsubscribe import router as unsubscribe_router
from tidings.deps import check_public_caller, json_body_type, required_scopes
from tidings.errors import ServiceUnavailable, error_responses, install_error_handlers
from tidings.imports.router import internal_router as imports_internal_router
from tidings.imports.router import router as imports_router
from tidings.middleware import (
    BodyLimitMiddleware,
    HeadAsGetMiddleware,
    IdempotencyMiddleware,
    body_limit_for,
)
from tidings.suppressions.router import router as suppressions_router
from tidings.templates.router import router as templates_router

# Routers whose request bodies are JSON; the import route takes CSV as well and checks its own.
JSON_ROUTERS = (
    audiences_router,
    contacts_router,
    templates_router,
    suppressions_router,
    campaigns_router,
    audit_router,
)
PUBLIC_ROUTERS = (*JSON_ROUTERS, imports_router)
BEARER = "bearerAuth"  # the security scheme of the OpenAPI document

DESCRIPTION = """Audiences and templated sends, self-hosted.

Authenticate with `Authorization: Bearer <key>`. Every route under `/v1` is also served under
`/api/v1`. Errors always have the shape `{"error": {"code", "message", "details"}}`.
"""


def _public_api(include_in_schema: bool) -> APIRouter:
    # A body without any Content-Type is read as JSON (``requests.post(url, data=json.dumps(...))``
    # sends none). FastAPI's strict default guards unauthenticated local apps against cross-site
    # requests; every public route needs an Authorization header, which no page can send without
    # a CORS preflight.
    api = APIRouter(include_in_schema=include_in_schema, strict_content_type=False)
    for router in JSON_ROUTERS:
        api.include_router(
            router, dependencies=[Depends(json_body_type)], responses=error_responses(415)
        )
    api.include_router(imports_router)
    return api


def _complete_document(app: FastAPI) -> None:
    """Makes the OpenAPI document say what the server does, beyond what FastAPI derives:
    each public operation's scopes and bearer authentication, request validation failures as the
    400 envelope they are, and the 413 of any request body."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        _document_scopes(schema)
        _document_errors(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_scopes(schema: dict[str, Any]) -> None:
    """``x-required-scopes`` on every public operation, derived from the route's dependency tree,
    so the document states exactly what a key needs to call it; and the bearer scheme."""
    for router in PUBLIC_ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            operations = schema["paths"].get(f"/v1{route.path}", {})
            for method in route.methods or ():
                if method.lower() in operations:
                    operation = operations[method.lower()]
                    operation["x-required-scopes"] = list(required_scopes(route.dependant))
                    operation["security"] = [{BEARER: []}]
    schema.setdefault("components", {})["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`tidings keys create`), shown once when it is created.",
        }
    }


def _document_errors(schema: dict[str, Any]) -> None:
    """FastAPI documents a 422 ``HTTPValidationError`` (``{"detail": [...]}``) for every operation
    with parameters; this server answers a request that fails validation with the 400 envelope
    (``errors.install_error_handlers``). Any body may be refused as too large (413,
    ``middleware.BodyLimitMiddleware``)."""
    validation_ref = "#/components/schemas/HTTPValidationError"
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            documented_422 = responses.get("422", {}).get("content", {})
            if documented_422.get("application/json", {}).get("schema") == {"$ref": validation_ref}:
                del responses["422"]
                responses.setdefault("400", _envelope_response("Bad Request"))
            if "requestBody" in operation:
                responses.setdefault("413", _envelope_response("Content Too Large"))
    schemas = schema.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def _envelope_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    }


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """What exists once the app has started (modules, routes, models, the libraries: ~150,000
    objects) lives as long as the process, so it is frozen out of the cyclic garbage collector:
    a full collection, which an import of 10,000 rows triggers, walked all of it every time
    (~95 ms of the import; ~3 ms frozen). No collection runs first: start-up leaves little
    garbage, and a full collection per start would add seconds to the test suite, which starts an
    app per test. Unfrozen at shutdown, so an app started and stopped in a longer-lived process
    (the tests) leaves nothing behind.

    At shutdown the pool's connections are closed too: SQLite removes its write-ahead log and
    shared-memory files when the last connection to the file closes, not when a process exits
    with them open."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        get_engine().dispose()


def create_app() -> FastAPI:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = FastAPI(title="Tidings", version=__version__, description=DESCRIPTION, lifespan=_lifespan)
    install_error_handlers(app, check_caller=check_public_caller)

    app.include_router(_public_api(True), prefix="/v1")
    app.include_router(_public_api(False), prefix="/api/v1")
    app.include_router(imports_internal_router, prefix="/api/internal")
    app.include_router(unsubscribe_router)
    app.include_router(dashboard_router)
    app.include_router(drawers_router)
    app.include_router(send_drawer_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, _: LoginRequired) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse("/login", status_code=303)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness and database reachability."""
        try:
            with get_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:
            raise ServiceUnavailable("The database is unreachable.") from exc
        return {"status": "ok", "version": __version__}

    # Outermost first: the body limit applies before idempotency buffers a body.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit_for)
    app.add_middleware(HeadAsGetMiddleware)
    _complete_document(app)
    return app
