"""Audience request and response shapes: seed 000's Audience object, plus ``slug`` (DESIGN.md §3).

Request models ignore unknown fields, so ``id``, ``organizationId`` or ``contactCount`` in a body
are never assigned (no mass assignment): only the fields declared here reach the service.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from tidings.contacts.schemas import Storable, Text
from tidings.models import Audience
from tidings.slugs import SLUG_SCHEMA
from tidings.timeutil import isoformat_z

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
]
Description = Annotated[str, StringConstraints(max_length=5000), Storable]
Slug = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable
]


# Documented in the OpenAPI schema; the service checks them, with messages that say what to do.
MAX_CONTACT_IDS = 10_000
CONTACT_IDS_SCHEMA: JsonDict = {"minItems": 1, "maxItems": MAX_CONTACT_IDS}


class AudienceCreate(BaseModel):
    name: Name = Field(description="Audience name")
    description: Description | None = Field(default=None, description="Optional notes")
    slug: Slug | None = Field(
        default=None,
        description="Lower-case letters, digits and hyphens; derived from the name when omitted",
        json_schema_extra=SLUG_SCHEMA,
    )


class AudienceUpdate(BaseModel):
    """Any subset of {name, description, slug}. ``name`` and ``slug`` may be omitted but not null:
    the schema does not offer ``null`` for them, and the service refuses it with a 400."""

    name: Name | SkipJsonSchema[None] = None
    description: Description | None = None
    slug: Slug | SkipJsonSchema[None] = Field(default=None, json_schema_extra=SLUG_SCHEMA)


class ContactIds(BaseModel):
    contactIds: list[Text] = Field(
        description=f"Contact ids (at most {MAX_CONTACT_IDS:,} per call)",
        json_schema_extra=CONTACT_IDS_SCHEMA,
    )


class AudienceOut(BaseModel):
    id: str
    name: str
    slug: str
    description: str | None
    organizationId: str
    contactCount: int
    createdAt: str
    updatedAt: str


class AudienceAdded(AudienceOut):
    added: int = Field(description="Contacts that were not members before this call")


class AudienceRemoved(AudienceOut):
    removed: int = Field(description="Contacts that were members before this call")


def audience_out(audience: Audience) -> AudienceOut:
    return AudienceOut(**_fields(audience))


def audience_added(audience: Audience, added: int) -> AudienceAdded:
    return AudienceAdded(**_fields(audience), added=added)


def audience_removed(audience: Audience, removed: int) -> AudienceRemoved:
    return AudienceRemoved(**_fields(audience), removed=removed)


def _fields(audience: Audience) -> dict[str, Any]:
    return {
        "id": audience.id,
        "name": audience.name,
        "slug": audience.slug,
        "description": audience.description,
        "organizationId": audience.org_id,
        "contactCount": audience.contact_count,
        "createdAt": isoformat_z(audience.created_at),
        "updatedAt": isoformat_z(audience.updated_at),
    }
