"""When a send starts and when each message goes: local wall time to UTC, and the ramp.

``scheduled_local`` is a wall-clock time in ``scheduled_at_tz`` (the organization's zone when
absent). Wall clocks skip an hour in spring and repeat one in autumn: a skipped time names no
instant and is refused; a repeated one takes the earlier instant (``fold=0``), the one a person
reading the clock first would mean.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tidings.errors import Unprocessable, ValidationFailed
from tidings.timeutil import iana_zone

LOCAL_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
MAX_RAMP_MINUTES = 1440
MIN_YEAR, MAX_YEAR = 1900, 9998
_MICROS_PER_MINUTE = 60_000_000


class InvalidScheduledLocal(ValidationFailed):
    code = "invalid_scheduled_local"


class UnknownTimeZone(ValidationFailed):
    code = "unknown_time_zone"


class NonexistentLocalTime(Unprocessable):
    code = "nonexistent_local_time"


class ScheduledInPast(Unprocessable):
    code = "scheduled_in_past"


def parse_zone(name: str) -> ZoneInfo:
    try:
        return iana_zone(name)
    except ValueError:
        raise UnknownTimeZone(
            f"unknown time zone {name!r}; use an IANA name such as 'America/New_York'",
            details={"field": "scheduled_at_tz"},
        ) from None


def parse_local(text: str) -> datetime:
    """A naive wall-clock time from ``YYYY-MM-DD HH:MM`` (seconds optional)."""
    for fmt in LOCAL_FORMATS:
        try:
            parsed = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        # Years at the edge of ``datetime`` overflow when shifted to UTC or by the ramp.
        if MIN_YEAR <= parsed.year <= MAX_YEAR:
            return parsed
        if parsed.year < MIN_YEAR:  # as every other past time is
            raise ScheduledInPast(
                f"scheduled_local {text!r} is in the past; choose a future time or omit it "
                "to send now",
                details={"field": "scheduled_local"},
            )
        raise InvalidScheduledLocal(
            f"scheduled_local {text!r} is out of range; choose a year from {MIN_YEAR} to "
            f"{MAX_YEAR}",
            details={"field": "scheduled_local"},
        )
    raise InvalidScheduledLocal(
        f"scheduled_local {text!r} is not a valid 'YYYY-MM-DD HH:MM' (or 'YYYY-MM-DD HH:MM:SS')",
        details={"field": "scheduled_local"},
    )


def local_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time; 422 when the clock skips it (DST gap).

    A time in a gap survives no round trip: converting it to UTC and back lands on another wall
    time. An ambiguous time keeps ``fold=0``, the earlier of its two instants.
    """
    aware = local.replace(tzinfo=zone, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        raise NonexistentLocalTime(
            f"{local:%Y-%m-%d %H:%M} does not exist in {zone.key}: the clocks skip it "
            "(daylight saving time); choose another time",
            details={"field": "scheduled_local", "timeZone": zone.key},
        )
    return instant


def resolve_starts_at(
    scheduled_local: str | None, zone_name: str, now: datetime, *, stored: bool = False
) -> tuple[datetime, str]:
    """``(starts_at, zone)``: the requested instant in UTC, or ``now`` when nothing is scheduled.
    ``stored``: the zone is the organization's, checked when it was saved; one saved before only
    IANA names were admitted (``localtime``, ``posix/…``) still loads, rather than failing every
    send of the organization on a field the client never sent."""
    zone = ZoneInfo(zone_name) if stored else parse_zone(zone_name)
    if scheduled_local is None:
        return now, zone.key
    starts_at = local_to_utc(parse_local(scheduled_local), zone)
    if starts_at < now:
        raise ScheduledInPast(
            f"scheduled_local {scheduled_local!r} in {zone.key} is in the past "
            f"({starts_at:%Y-%m-%dT%H:%M:%SZ}); choose a future time or omit it to send now",
            details={"field": "scheduled_local"},
        )
    return starts_at, zone.key


def schedule_times(starts_at: datetime, ramp_minutes: int, n: int) -> Iterator[datetime]:
    """Message ``i`` of ``n`` at ``starts_at + ramp * i / n``: evenly spread, the first at the start
    and none at the very end. Integer microseconds, so the spacing is exact and the same on every
    run (a float would drift by a microsecond here and there)."""
    window = ramp_minutes * _MICROS_PER_MINUTE
    for i in range(n):
        yield starts_at + timedelta(microseconds=window * i // n)


def ends_at(starts_at: datetime, ramp_minutes: int) -> datetime:
    return starts_at + timedelta(minutes=ramp_minutes)
