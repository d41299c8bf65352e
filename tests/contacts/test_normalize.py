"""Address normalisation: the fast path for plain addresses agrees with the full validator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.contacts.normalize import (
    InvalidAddress,
    _normalize_email_fully,
    normalize_email,
    normalize_phone,
)

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
local_parts = st.lists(st.text(ATEXT, min_size=1, max_size=12), min_size=1, max_size=4).map(
    ".".join
)
labels = st.text("abcz09-", min_size=1, max_size=12)
domains = st.tuples(
    st.lists(labels, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "io", "test", "local", "co", "x"]),
).map(lambda t: ".".join([*t[0], t[1]]))


def _outcome(fn: object, value: str) -> str:
    try:
        return fn(value)  # type: ignore[operator, no-any-return]
    except InvalidAddress:
        return "invalid"


@settings(max_examples=400, deadline=None)
@given(local=local_parts, domain=domains, upper=st.booleans())
def test_fast_path_agrees_with_the_full_validator(local: str, domain: str, upper: bool) -> None:
    value = f"{local}@{domain.upper() if upper else domain}"
    assert _outcome(normalize_email, value) == _outcome(_normalize_email_fully, value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice@Example.COM ", "Alice@example.com"),
        ("bob.smith+tag@sub.example.org", "bob.smith+tag@sub.example.org"),
        ("josé@exämple.com", "josé@xn--exmple-cua.com"),
    ],
)
def test_normalised_spelling(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no-at-sign",
        "a@b",
        "a..b@example.com",
        "a@-x.com",
        "a@example.invalid",
    ],
)
def test_invalid_emails(raw: str) -> None:
    with pytest.raises(InvalidAddress):
        normalize_email(raw)


def test_phones_become_e164() -> None:
    assert normalize_phone(" +1 (415) 555-0101 ") == "+14155550101"
    with pytest.raises(InvalidAddress):
        normalize_phone("555-0101")
    with pytest.raises(InvalidAddress):
        normalize_phone("+1 000")
