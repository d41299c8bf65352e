"""``/u/{token}``: the RFC 8058 one-click unsubscribe page and endpoint."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["unsubscribe"])
