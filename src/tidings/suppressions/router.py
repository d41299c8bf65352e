"""HTTP for suppressions: parse, call one service function, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["suppressions"])
