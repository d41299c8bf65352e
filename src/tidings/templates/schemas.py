"""Pydantic shapes of templates and previews (camelCase, like every resource after seed 000)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic.config import JsonDict

from tidings.contacts.schemas import JsonObject, Storable, Text
from tidings.slugs import SLUG_SCHEMA

Channel = Literal["email", "sms"]
SLUG_PATTERN = SLUG_SCHEMA["pattern"]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
]


def _no_variables_as_empty(value: Any) -> Any:
    return {} if value is None else value


def _or_null(schema: JsonDict) -> None:
    """The document says what ``_no_variables_as_empty`` accepts: an object, or ``null``."""
    shape = {k: v for k, v in schema.items() if k not in ("title", "description")}
    for key in shape:
        del schema[key]
    schema["anyOf"] = [shape, {"type": "null"}]


# ``null`` is no variables; anything else is a free-form JSON object, like contact metadata.
Variables = Annotated[
    JsonObject, BeforeValidator(_no_variables_as_empty), Field(json_schema_extra=_or_null)
]


def _blank_as_absent(value: str | None) -> str | None:
    """An empty or blank body is no body: stored as ``""`` it went out as a blank HTML part
    (what most mail clients show) instead of one derived from the text."""
    return value if value is None or value.strip() else None


Body = Annotated[Text | None, AfterValidator(_blank_as_absent)]


class TemplateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    slug: Text | None = Field(
        default=None,
        max_length=200,
        pattern=SLUG_PATTERN,
        description="Unique per organization; derived from the name when absent.",
        json_schema_extra=SLUG_SCHEMA,
    )
    channel: Channel
    subject: Text | None = Field(default=None, description="Email only; Liquid.")
    html: Body = Field(
        default=None, description="Email only; Liquid, autoescaped. Blank is the same as absent."
    )
    text: Body = Field(default=None, description="Liquid; required for SMS. Blank is absent.")


class TemplateUpdate(BaseModel):
    """Any subset of the fields; ``null`` clears subject, html or text."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    slug: Text | None = Field(
        default=None, max_length=200, pattern=SLUG_PATTERN, json_schema_extra=SLUG_SCHEMA
    )
    channel: Channel | None = None
    subject: Text | None = None
    html: Body = None
    text: Body = None


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

    contactId: Text | None = Field(
        default=None, description="A contact of your organization whose data fills the template."
    )
    variables: Variables = Field(
        default_factory=dict, description="Win over contact metadata and built-ins."
    )


class PreviewOut(BaseModel):
    subject: str | None
    html: str | None
    text: str | None
