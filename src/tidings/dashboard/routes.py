"""The dashboard: login, logout, /overview/audiences and its per-audience drawers.

Server-rendered Jinja2 with htmx (vendored under /static). Every state-changing request carries the
session's CSRF token: htmx sends it as the ``X-CSRF-Token`` header (set once on <body>), plain forms
as a hidden ``csrf_token`` field. The login form, which has no session yet, uses a signed
double-submit cookie instead.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.auth import (
    LoginFailed,
    LoginThrottled,
    create_dashboard_session,
    end_dashboard_session,
    log_in,
    resolve_dashboard_session,
    tokens_equal,
)
from tidings.contacts.service import substring_pattern
from tidings.deps import CSRF_HEADER, SESSION_COOKIE, DbSession
from tidings.models import Audience, Campaign, DashboardSession, User
from tidings.tenancy import for_org
from tidings.timeutil import isoformat_z

STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"
LOGIN_CSRF_COOKIE = "tidings_login_csrf"
PAGE_SIZE = 20

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["isoz"] = isoformat_z
router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    """Raised by ``current_user``; app.py turns it into a redirect to /login."""


class DashboardUser:
    """The logged-in user of this request, with the session's CSRF token for the page."""

    def __init__(self, user: User, row: DashboardSession) -> None:
        self.user = user
        self.csrf_token = row.csrf_token

    @property
    def is_owner(self) -> bool:
        return self.user.role == "owner"


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


async def _form_csrf(request: Request) -> str:
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


async def current_user(request: Request, session: DbSession) -> DashboardUser:
    """The session's user; unsafe methods must carry the session's CSRF token (403 otherwise)."""
    token = request.cookies.get(SESSION_COOKIE)
    resolved = resolve_dashboard_session(session, token) if token else None
    if resolved is None:
        raise LoginRequired
    row, user = resolved
    if request.method not in ("GET", "HEAD"):
        sent = request.headers.get(CSRF_HEADER) or await _form_csrf(request)
        if not sent or not tokens_equal(sent, row.csrf_token):
            from tidings.errors import Forbidden

            raise Forbidden("Missing or invalid CSRF token; reload the page and try again.")
    return DashboardUser(user, row)


CurrentUser = Annotated[DashboardUser, Depends(current_user)]


def require_owner(viewer: DashboardUser) -> None:
    from tidings.errors import Forbidden

    if not viewer.is_owner:
        raise Forbidden("Only owners of the organization can do this.")


@router.get("/", response_class=RedirectResponse)
def root() -> RedirectResponse:
    return RedirectResponse("/overview/audiences", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    """The form. Its error line comes only from a failed submission (``_login_error``): a
    ``?error=`` read from the address showed any text a link put there, on our page."""
    csrf = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request, "login.html", {"csrf_token": csrf, "error": None, "email": ""}
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
        max_age=3600,
    )
    return response


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: DbSession,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf_token or not tokens_equal(cookie, csrf_token):
        return _login_error(request, "Your login form expired; please try again.", email, 403)
    try:
        user = log_in(session, email, password)
    except LoginThrottled as exc:
        return _login_error(
            request,
            f"Too many failed attempts. Try again in {exc.retry_after_seconds} seconds.",
            email,
            429,
        )
    except LoginFailed:
        return _login_error(request, "Wrong email or password.", email, 200)
    token, _ = create_dashboard_session(session, user)
    response = RedirectResponse("/overview/audiences", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
        max_age=7 * 24 * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


def _login_error(request: Request, message: str, email: str, status: int) -> Response:
    csrf = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"csrf_token": csrf, "error": message, "email": email},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
        max_age=3600,
    )
    return response


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request, viewer: CurrentUser) -> Response:
    """A link to /logout asks to confirm, with the form that posts the CSRF token: a GET that
    logged out would let any page log a user out (logged out already: the login page)."""
    return templates.TemplateResponse(request, "logout.html", {"viewer": viewer})


@router.post("/logout")
def logout(request: Request, session: DbSession, viewer: CurrentUser) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_dashboard_session(session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _last_campaigns(session: Session, org_id: str, audience_ids: list[str]) -> dict[str, Campaign]:
    """The newest campaign of each audience on the page, in one query (a window function)."""
    if not audience_ids:
        return {}
    ranked = (
        select(
            Campaign.id,
            func.row_number()
            .over(
                partition_by=Campaign.audience_id,
                order_by=(Campaign.created_at.desc(), Campaign.id.desc()),
            )
            .label("rank"),
        )
        .where(Campaign.org_id == org_id, Campaign.audience_id.in_(audience_ids))
        .subquery()
    )
    rows = session.scalars(
        for_org(Campaign, org_id).join(ranked, ranked.c.id == Campaign.id).where(ranked.c.rank == 1)
    ).all()
    return {c.audience_id: c for c in rows if c.audience_id is not None}


def audiences_context(
    session: Session, viewer: DashboardUser, search: str, page: int
) -> dict[str, Any]:
    stmt = for_org(Audience, viewer.user.org_id)
    if search.strip():
        pattern = substring_pattern(search.strip())
        stmt = stmt.where(
            Audience.name.ilike(pattern, escape="\\") | Audience.slug.ilike(pattern, escape="\\")
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(page, 1), pages)
    audiences = session.scalars(
        stmt.order_by(Audience.created_at.desc(), Audience.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    ).all()
    return {
        "viewer": viewer,
        "audiences": audiences,
        "last_campaigns": _last_campaigns(session, viewer.user.org_id, [a.id for a in audiences]),
        "search": search,
        "page": page,
        "pages": pages,
        "total": total,
        "page_url": lambda p: "/overview/audiences?" + urlencode({"search": search, "page": p}),
    }


@router.get("/overview/audiences", response_class=HTMLResponse)
def audiences_page(
    request: Request, session: DbSession, viewer: CurrentUser, search: str = "", page: int = 1
) -> Response:
    context = audiences_context(session, viewer, search, page)
    # htmx swaps in the table alone, except when it restores a page from history (Back): that
    # needs the whole page, as does the browser itself. One URL, two bodies: ``Vary`` keeps a
    # cache from handing the table to the browser, which then showed a page without its header.
    partial = request.headers.get("hx-request") and not request.headers.get(
        "hx-history-restore-request"
    )
    name = "_audience_table.html" if partial else "audiences.html"
    response = templates.TemplateResponse(request, name, context)
    response.headers["Vary"] = "HX-Request, HX-History-Restore-Request"
    return response
