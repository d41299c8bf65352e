"""``/u/{token}``: the RFC 8058 one-click unsubscribe page and endpoint.

GET shows a confirmation page whose button POSTs back (so a mail scanner that follows links does
not unsubscribe anyone); POST — what a mail client sends for ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click`` — suppresses the address at once. No login, no cookie, no CSRF token:
the signed token is the only credential, and it only ever names one address of one organization.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from tidings.delivery.service import unsubscribe
from tidings.delivery.tokens import read_unsubscribe_token
from tidings.deps import DbSession

router = APIRouter(tags=["unsubscribe"])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;
color:#222}}button{{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}}</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status_code)


def _not_found() -> HTMLResponse:
    return _page(
        "Link not valid",
        "<p>This unsubscribe link is not valid. Use the link from the email you received.</p>",
        404,
    )


@router.get("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(token: str) -> HTMLResponse:
    """Asks before unsubscribing: link checkers and mail scanners look (GET, or HEAD through
    ``middleware.HeadAsGetMiddleware``) before anyone clicks, and must not unsubscribe. The
    form posts back to the page's own address (no ``action``):
    behind a proxy that serves Tidings under a path (``TIDINGS_PUBLIC_URL=https://x/tidings``),
    ``/u/...`` missed the prefix."""
    target = read_unsubscribe_token(token)
    if target is None:
        return _not_found()
    return _page(
        "Unsubscribe",
        f"<p>Stop sending messages to <strong>{escape(target.address)}</strong>?</p>"
        '<form method="post">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@router.post("/u/{token}", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_one_click(token: str, session: DbSession) -> HTMLResponse:
    target = read_unsubscribe_token(token)
    if target is None or not unsubscribe(session, target):
        return _not_found()
    return _page(
        "You are unsubscribed",
        f"<p><strong>{escape(target.address)}</strong> will receive no more messages "
        "from this sender.</p>",
    )
