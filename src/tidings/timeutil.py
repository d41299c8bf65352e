"""UTC time and the one timestamp format of the API (DESIGN.md §2)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

# Loadable, but not a place's civil time: the server's own zone, and tzdata's placeholder.
_NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat_z(value: datetime) -> str:
    """``2026-03-01T10:00:00.000Z``: UTC, milliseconds, ``Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iana_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``America/New_York``); ValueError for anything else. The
    system's ``posix/`` and ``right/`` copies of the database also load (``right/`` counts leap
    seconds, and its New York wall clock was an hour off), and so does ``localtime``, whatever
    zone the server runs in."""
    if name not in _iana_names():
        raise ValueError(f"not an IANA time zone: {name!r}")
    return ZoneInfo(name)


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_PLACES
