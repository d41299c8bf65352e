"""The scheduler as a property: for any zone, local time and ramp, every message falls inside
``[starts_at, ends_at)`` (all at ``starts_at`` when the ramp is 0), none is lost, the result is
deterministic, and a local time either names one instant (that reads back as the same wall time)
or is refused as nonexistent."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.campaigns.schedule import (
    MAX_RAMP_MINUTES,
    NonexistentLocalTime,
    ends_at,
    local_to_utc,
    resolve_starts_at,
    schedule_times,
)

ZONES = sorted(available_timezones() - {"localtime", "Factory"})
LONG_AGO = datetime(1900, 1, 1, tzinfo=UTC)
_local = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31))
_property = settings(max_examples=300, deadline=None)


@_property
@given(
    zone=st.sampled_from(ZONES),
    local=_local,
    ramp=st.one_of(st.just(0), st.integers(0, MAX_RAMP_MINUTES)),
    n=st.integers(0, 400),
)
def test_every_message_falls_in_the_window(zone: str, local: datetime, ramp: int, n: int) -> None:
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    try:
        starts_at, _ = resolve_starts_at(text, zone, LONG_AGO)
    except NonexistentLocalTime:
        return
    end = ends_at(starts_at, ramp)
    times = list(schedule_times(starts_at, ramp, n))
    assert len(times) == n
    assert times == list(schedule_times(starts_at, ramp, n))
    assert times == sorted(times)
    for at in times:
        if ramp == 0:
            assert at == starts_at
        else:
            assert starts_at <= at < end
    if n:
        assert times[0] == starts_at


@_property
@given(zone=st.sampled_from(ZONES), local=_local)
def test_a_local_time_names_one_instant_or_is_refused(zone: str, local: datetime) -> None:
    tz = ZoneInfo(zone)
    local = local.replace(second=0, microsecond=0)
    try:
        instant = local_to_utc(local, tz)
    except NonexistentLocalTime:
        # Really in a gap: no instant of the zone shows this wall time.
        assert local.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local
        return
    assert instant.tzinfo == UTC
    assert instant.astimezone(tz).replace(tzinfo=None) == local
    # Ambiguous (autumn) times take the earlier instant.
    later = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    assert instant <= later
