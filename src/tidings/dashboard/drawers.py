"""The per-audience drawers of /overview/audiences (owners only) and the campaign view.

Each handler reads a form, calls the same service function the API uses, and renders a fragment.
Failures are rendered into the drawer (status 200, so htmx swaps them in) with the API's message;
the authorisation failures (no session, no CSRF, not an owner) stay real 401/403 answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from tidings.audiences.schemas import AudienceCreate, AudienceUpdate
from tidings.audiences.service import create_audience, get_audience, update_audience
from tidings.auth import Principal, user_principal
from tidings.dashboard.routes import (
    CurrentUser,
    DashboardUser,
    audiences_context,
    require_owner,
    templates,
)
from tidings.deps import DbSession
from tidings.errors import ApiError, ValidationFailed
from tidings.imports.service import import_csv

router = APIRouter(include_in_schema=False)
T = TypeVar("T")


def owner_principal(viewer: DashboardUser) -> Principal:
    """The owner acting through the page; members are refused (403) whatever the page showed."""
    require_owner(viewer)
    return user_principal(viewer.user)


def _fragment(request: Request, name: str, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context)


@router.post("/overview/audiences", response_class=HTMLResponse)
def create_audience_from_page(
    request: Request,
    session: DbSession,
    viewer: CurrentUser,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    actor = owner_principal(viewer)

    def create() -> Any:
        # The API's own checks (length, NUL), which the form's attributes only suggest.
        body = AudienceCreate(name=name.strip(), description=description.strip() or None)
        return create_audience(session, actor, name=body.name, description=body.description)

    _, error = attempt(session, create)
    context = audiences_context(session, viewer, "", 1)
    return _fragment(request, "_audience_table.html", error=error, **context)


@router.get("/overview/audiences/{audience_id}/drawer/{kind}", response_class=HTMLResponse)
def open_drawer(
    request: Request,
    session: DbSession,
    viewer: CurrentUser,
    audience_id: str,
    kind: str,
    channel: str = "email",
) -> Response:
    actor = owner_principal(viewer)
    audience = get_audience(session, actor.org_id, audience_id)
    if kind == "import":
        return _fragment(request, "_drawer_import.html", audience=audience)
    if kind == "rename":
        return _fragment(request, "_drawer_rename.html", audience=audience)
    if kind == "send":
        from tidings.dashboard.send_drawer import send_drawer_context

        return _fragment(
            request, "_drawer_send.html", **send_drawer_context(session, actor, audience, channel)
        )
    return Response(status_code=404)


def _csv_bytes(file: UploadFile | None, csv: str) -> bytes:
    """The chosen file or the pasted text. Both at once is refused: the file, perhaps left
    selected from an earlier import, would silently win over what was just pasted."""
    chosen = file is not None and bool(file.filename)
    if chosen and csv.strip():
        raise ValidationFailed(
            "Choose a file or paste CSV text, not both; clear the one you do not mean."
        )
    if file is not None and chosen:
        return file.file.read()
    return csv.encode("utf-8")


def attempt(session: Session, action: Callable[[], T]) -> tuple[T | None, str | None]:
    """Runs a service call for a drawer. On a domain error, or a form value the API's schema
    refuses, the transaction is rolled back here (the request's session would otherwise commit
    what was flushed) and the message is returned for the fragment; authorisation errors and
    missing objects still propagate as real answers."""
    try:
        return action(), None
    except ValidationError as exc:
        session.rollback()
        return None, validation_message(exc)
    except ApiError as exc:
        session.rollback()
        if exc.status_code in (401, 403, 404):
            raise
        return None, exc.message


def validation_message(exc: ValidationError) -> str:
    """The first problem, as ``field: message``, for a drawer."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ()))
    return f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg"))


@router.post("/overview/audiences/{audience_id}/import", response_class=HTMLResponse)
def import_from_drawer(
    request: Request,
    session: DbSession,
    viewer: CurrentUser,
    audience_id: str,
    file: Annotated[UploadFile | None, Form()] = None,
    csv: Annotated[str, Form()] = "",
) -> Response:
    actor = owner_principal(viewer)
    result, error = attempt(
        session, lambda: import_csv(session, actor, audience_id, _csv_bytes(file, csv))
    )
    return _fragment(
        request, "_import_result.html", result=result, audience_id=audience_id, error=error
    )


@router.post("/overview/audiences/{audience_id}/rename", response_class=HTMLResponse)
def rename_from_drawer(
    request: Request,
    session: DbSession,
    viewer: CurrentUser,
    audience_id: str,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
) -> Response:
    actor = owner_principal(viewer)

    def rename() -> Any:
        body = AudienceUpdate(name=name.strip(), description=description.strip() or None)
        changes = body.model_dump(include=body.model_fields_set)
        return update_audience(session, actor, audience_id, changes)

    audience, error = attempt(session, rename)
    if audience is None:
        audience = get_audience(session, actor.org_id, audience_id)
        return _fragment(request, "_drawer_rename.html", audience=audience, error=error)
    return _fragment(request, "_renamed.html", audience=audience)
