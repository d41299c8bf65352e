"""Pydantic shapes of templates and previews (camelCase, like every resource after seed 000)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

Channel = Literal["email", "sms"]
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _refused(message: str) -> PydanticCustomError:
    # A custom error type keeps pydantic's "Value error, " prefix out of the message users read.
    return PydanticCustomError("flat_variables", message)


def _flat_scalars(value: Any) -> Any:
    """Variables end up in Liquid as plain values and in JSON columns; nested objects or lists
    would render as Python reprs in an email, so they are refused up front with the offending key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _refused("variables must be a JSON object of strings, numbers, booleans or null")
    for key, item in value.items():
        if item is not None and not isinstance(item, str | int | float | bool):
            kind = "an object" if isinstance(item, dict) else "a list"
            raise _refused(
                f"variables must be flat: {key!r} is {kind}; use strings, numbers, booleans or null"
            )
        if isinstance(item, float) and not math.isfinite(item):
            raise _refused(f"variables: {key!r} is not a finite number")
    return value


FlatVariables = Annotated[dict[str, Any], BeforeValidator(_flat_scalars)]


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    slug: str | None = Field(
        default=None,
        max_length=200,
        pattern=SLUG_PATTERN,
        description="Unique per organization; derived from the name when absent.",
    )
    channel: Channel
    subject: str | None = Field(default=None, description="Email only; Liquid.")
    html: str | None = Field(default=None, description="Email only; Liquid, autoescaped.")
    text: str | None = Field(default=None, description="Liquid; required for SMS.")


class TemplateUpdate(BaseModel):
    """Any subset of the fields; ``null`` clears subject, html or text."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    slug: str | None = Field(default=None, max_length=200, pattern=SLUG_PATTERN)
    channel: Channel | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None


class TemplateOut(BaseModel):
    id: str
    slug: str
    name: str
    channel: Channel
    subject: str | None
    html: str | None
    text: str | None
    createdAt: str
    updatedAt: str


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contactId: str | None = Field(
        default=None, description="A contact of your organization whose data fills the template."
    )
    variables: FlatVariables = Field(
        default_factory=dict, description="Win over contact metadata and built-ins."
    )


class PreviewOut(BaseModel):
    subject: str | None
    html: str | None
    text: str | None


class Deleted(BaseModel):
    success: bool = True
