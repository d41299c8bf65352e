"""HTTP for CSV imports: the internal route and its public twin share one code path."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["imports"])
internal_router = APIRouter(tags=["internal"])
