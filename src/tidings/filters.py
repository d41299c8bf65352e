"""List filters that clients spell several ways in the query string.

DESIGN §3 says "filter by campaign"; our objects say ``campaignId``; the send's fields are
snake_case. A list reads any one spelling, and a 400 says so when two disagree: an unread
spelling would list everything, filtered by nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import Query

from tidings.errors import ValidationFailed


def one_spelling(name: str, spellings: dict[str, str | None]) -> str | None:
    """The one value given for the filter ``name`` under any of its ``spellings``, or None. An
    empty value (``?audience=``) filters by nothing, as it does on its own."""
    given = {spelling: value for spelling, value in spellings.items() if value}
    if len(set(given.values())) > 1:
        raise ValidationFailed(
            f"{' and '.join(given)} name different {name}s; give one of them",
            details=[{"field": spelling, "message": "conflicting filter"} for spelling in given],
        )
    return next(iter(given.values()), None)


def another_spelling(spelling: str) -> Any:
    """The ``Query`` of a filter's other spelling."""
    return Query(alias=spelling, description=f"Another spelling of the filter ({spelling}).")
