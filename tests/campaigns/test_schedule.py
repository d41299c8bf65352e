"""Local wall time to UTC (both DST transitions) and the ramp, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tidings.campaigns.schedule import (
    InvalidScheduledLocal,
    NonexistentLocalTime,
    ScheduledInPast,
    UnknownTimeZone,
    ends_at,
    local_to_utc,
    parse_local,
    resolve_starts_at,
    schedule_times,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        ("America/New_York", "2027-05-01 09:00", "2027-05-01T13:00:00+00:00"),  # EDT
        ("America/New_York", "2027-01-15 09:00", "2027-01-15T14:00:00+00:00"),  # EST
        ("America/New_York", "2027-11-07 01:30", "2027-11-07T05:30:00+00:00"),  # fold: EDT
        ("Europe/London", "2027-07-01 09:00", "2027-07-01T08:00:00+00:00"),  # BST
        ("Europe/London", "2027-01-15 09:00", "2027-01-15T09:00:00+00:00"),  # GMT
        ("Europe/London", "2027-10-31 01:30", "2027-10-31T00:30:00+00:00"),  # fold: BST
        ("Asia/Kolkata", "2027-05-01 09:00", "2027-05-01T03:30:00+00:00"),
        ("Asia/Kolkata", "2027-05-01 09:00:30", "2027-05-01T03:30:30+00:00"),
    ],
)
def test_local_time_to_utc(zone: str, local: str, expected: str) -> None:
    starts_at, key = resolve_starts_at(local, zone, NOW)
    assert starts_at == datetime.fromisoformat(expected)
    assert key == zone


@pytest.mark.parametrize(
    ("zone", "local"),
    [("America/New_York", "2027-03-14 02:30"), ("Europe/London", "2027-03-28 01:30")],
)
def test_time_in_the_spring_gap_is_refused(zone: str, local: str) -> None:
    with pytest.raises(NonexistentLocalTime) as info:
        local_to_utc(parse_local(local), ZoneInfo(zone))
    assert info.value.status_code == 422
    assert "does not exist" in info.value.message


def test_ambiguous_time_takes_the_earlier_instant() -> None:
    zone = ZoneInfo("America/New_York")
    earlier = local_to_utc(datetime(2027, 11, 7, 1, 30), zone)
    later = datetime(2027, 11, 7, 1, 30, tzinfo=zone, fold=1).astimezone(UTC)
    assert earlier == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)
    assert later - earlier == timedelta(hours=1)


def test_past_time_is_refused() -> None:
    with pytest.raises(ScheduledInPast) as info:
        resolve_starts_at("2026-11-23 11:59", "UTC", NOW)
    assert info.value.status_code == 422


def test_no_schedule_means_now() -> None:
    assert resolve_starts_at(None, "Europe/Paris", NOW) == (NOW, "Europe/Paris")


@pytest.mark.parametrize(
    "text",
    [
        "2027-05-01",
        "2027/05/01 09:00",
        "09:00",
        "2027-02-30 09:00",
        "2027-05-01 25:00",
        "",
    ],
)
def test_bad_format_is_a_400(text: str) -> None:
    with pytest.raises(InvalidScheduledLocal) as info:
        parse_local(text)
    assert info.value.status_code == 400
    assert "is not a valid 'YYYY-MM-DD HH:MM'" in info.value.message


def test_a_year_past_the_edge_of_the_calendar_is_out_of_range_not_malformed() -> None:
    with pytest.raises(InvalidScheduledLocal) as info:
        parse_local("9999-12-31 23:59")
    assert info.value.status_code == 400
    assert "out of range; choose a year from 1900 to 9998" in info.value.message


@pytest.mark.parametrize("text", ["1899-12-31 23:59", "0001-01-01 00:00"])
def test_a_year_before_1900_is_in_the_past(text: str) -> None:
    """As 1900 itself is: a 422, not a 400 about the calendar's range."""
    with pytest.raises(ScheduledInPast) as info:
        parse_local(text)
    assert info.value.status_code == 422


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        # They load, but are not a place's civil time: right/ counts leap seconds (its New
        # York wall clock was an hour off), localtime is the server's own zone.
        "right/America/New_York",
        "posix/America/New_York",
        "localtime",
        "Factory",
        "america/new_york",
    ],
)
def test_a_zone_that_is_not_iana_is_a_400(zone: str) -> None:
    with pytest.raises(UnknownTimeZone) as info:
        resolve_starts_at("2027-05-01 09:00", zone, NOW)
    assert info.value.status_code == 400
    starts_at, _ = resolve_starts_at("2027-05-01 09:00", "America/New_York", NOW)
    assert starts_at == datetime(2027, 5, 1, 13, tzinfo=UTC)


def test_an_organizations_zone_saved_before_iana_names_only_still_loads() -> None:
    starts_at, _ = resolve_starts_at("2027-05-01 09:00", "posix/Europe/Paris", NOW, stored=True)
    assert starts_at == datetime(2027, 5, 1, 7, tzinfo=UTC)


def test_ramp_spreads_message_i_of_n_at_ramp_times_i_over_n() -> None:
    start = datetime(2027, 5, 1, 13, tzinfo=UTC)
    times = list(schedule_times(start, 60, 7))
    assert times == [start + timedelta(microseconds=3_600_000_000 * i // 7) for i in range(7)]
    assert times[0] == start
    assert times[-1] < ends_at(start, 60) == start + timedelta(hours=1)


def test_no_ramp_sends_all_at_the_start() -> None:
    start = datetime(2027, 5, 1, 13, tzinfo=UTC)
    assert set(schedule_times(start, 0, 5)) == {start}
    assert ends_at(start, 0) == start
