"""Address normalisation shared by contacts, CSV imports and the suppression list, so that one
address has one spelling everywhere: emails validated with the domain lower-cased, phones in E.164."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """Raised with a message fit to show a user."""


def normalize_email(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise InvalidAddress("email is empty")
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"invalid email {value!r}: {exc}") from None
    # The local part is kept as written (it may be case-sensitive); the domain is case-insensitive.
    return f"{result.local_part}@{result.ascii_domain.lower()}"


def normalize_phone(raw: str) -> str:
    """E.164. Numbers must carry their country code (``+1 212 555 0100``): contacts belong to
    organizations in many countries, so there is no safe default region."""
    value = raw.strip()
    if not value:
        raise InvalidAddress("phone is empty")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise InvalidAddress(
            f"invalid phone {value!r}: use international format with a country code, e.g. +14155550100"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidAddress(f"invalid phone {value!r}: not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_address(raw: str) -> str:
    """An email if it has an ``@``, else a phone (the suppression list holds both)."""
    return normalize_email(raw) if "@" in raw else normalize_phone(raw)
