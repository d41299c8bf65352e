"""Address normalisation shared by contacts, CSV imports and the suppression list, so that one
address has one spelling everywhere: emails validated with the domain lower-cased, phones in E.164.
Names, and the terms that search them, are composed the same way (``normalize_name``)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from tidings.contacts.limits import MAX_NAME_LENGTH


class InvalidAddress(ValueError):
    """Raised with a message fit to show a user."""


# The common case: an ASCII dot-atom local part and an ASCII host name. For those, the full
# validator's verdict depends only on the domain, which is checked once per domain (by the full
# validator itself) and memoised; an import of 10,000 rows then validates a few dozen domains instead
# of 10,000 addresses. Everything else takes the full path. tests/contacts/test_normalize.py checks
# that both paths agree.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM_LOCAL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_HOST_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")


@lru_cache(maxsize=8192)
def _checked_domain(domain: str) -> str:
    return str(validate_email(f"a@{domain}", check_deliverability=False).ascii_domain).lower()


def normalize_email(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise InvalidAddress("email is empty")
    local, at, domain = value.rpartition("@")
    domain = domain.lower()
    if (
        at
        and len(value) <= 254
        and len(local) <= 64
        and _DOT_ATOM_LOCAL.match(local)
        and _HOST_NAME.match(domain)
    ):
        if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:  # RFC 2142 role names, as the full path
            local = local.lower()
        try:
            return f"{local}@{_checked_domain(domain)}"
        except EmailNotValidError as exc:
            raise InvalidAddress(f"invalid email {value!r}: {exc}") from None
    return _normalize_email_fully(value)


def _normalize_email_fully(value: str) -> str:
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
    """An email if it has an ``@``, else a phone (the suppression list holds both). Text with
    neither an ``@`` nor a digit is named as what it is not, rather than as a bad phone."""
    if "@" in raw:
        return normalize_email(raw)
    if not any(character.isdigit() for character in raw):
        raise InvalidAddress(
            f"{raw.strip()!r} is neither an email address (name@example.com) nor a phone number "
            "in international format (+14155550100)"
        )
    return normalize_phone(raw)


def suppression_key(address: str) -> str:
    """How an address is stored on, and matched against, the suppression list: its normalised
    form, lower-cased whole. Contacts keep the local part as written (it may be case-sensitive),
    but nearly every mailbox treats ``Alice@`` and ``alice@`` alike, and a suppression must never
    miss because of case: sending to someone who unsubscribed is the worse error."""
    return address.lower()


class InvalidName(ValueError):
    """A name longer than its column once composed; raised with a message fit to show a user."""


def normalize_name(raw: str | None) -> str | None:
    """A name as stored: trimmed, ``None`` when blank, and in Unicode's composed form (NFC), as
    email-validator composes an address. ``José`` typed on macOS arrives decomposed (``e`` and a
    combining accent) and a search for the composed ``José`` missed it; search terms are
    composed too (``contacts.service.search_values``). Its length is counted composed:
    composing can lengthen a name (a Hebrew presentation form is three characters)."""
    text = unicodedata.normalize("NFC", raw.strip()) if raw else ""
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidName(f"name is longer than {MAX_NAME_LENGTH} characters once composed (NFC)")
    return text or None
