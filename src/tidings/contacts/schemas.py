"""Contact request and response shapes (DESIGN.md §3: camelCase, like seed 000's objects).

Request models ignore unknown fields, so a client echoing ``id``, ``organizationId`` or timestamps
back cannot assign them: only the fields declared here ever reach the service.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from tidings.models import Contact
from tidings.timeutil import isoformat_z

MAX_METADATA_KEYS = 100
SEARCH_MAX = 200


def _no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL; refuse it here (a 400) rather than fail in the database."""
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


# Every request string carries this, so both backends accept exactly the same text. Constraints go
# on ``str`` itself, before it: ``Annotated[str, StringConstraints(...), NoNul]``.
NoNul = AfterValidator(_no_nul)
Text = Annotated[str, NoNul]
# A flat object: template variables are scalars, and nested values would not survive a CSV round trip.
Scalar = Text | int | float | bool | None
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=100), NoNul]
Metadata = Annotated[dict[MetadataKey, Scalar], Field(max_length=MAX_METADATA_KEYS)]
Email = Annotated[str, StringConstraints(max_length=320), NoNul]
Phone = Annotated[str, StringConstraints(max_length=64), NoNul]
Name = Annotated[str, StringConstraints(max_length=200), NoNul]
# Route parameters: ids in the path, and the ``search`` filter of the contact lists.
ObjectId = Annotated[Text, Path()]
Search = Annotated[
    Text | None,
    Query(max_length=SEARCH_MAX, description="Matches name, email or phone (any case)"),
]


class ContactCreate(BaseModel):
    email: Email | None = None
    phone: Phone | None = None
    name: Name | None = None
    metadata: Metadata | None = None


class ContactUpdate(BaseModel):
    """Any subset; an explicit ``null`` clears a field, an absent field is left alone."""

    email: Email | None = None
    phone: Phone | None = None
    name: Name | None = None
    metadata: Metadata | None = None


class ContactOut(BaseModel):
    id: str
    email: str | None
    phone: str | None
    name: str | None
    metadata: dict[str, Any]
    organizationId: str
    createdAt: str
    updatedAt: str


class SuccessOut(BaseModel):
    success: bool = True


def contact_out(contact: Contact) -> ContactOut:
    return ContactOut(
        id=contact.id,
        email=contact.email,
        phone=contact.phone,
        name=contact.name,
        metadata=contact.metadata_ or {},
        organizationId=contact.org_id,
        createdAt=isoformat_z(contact.created_at),
        updatedAt=isoformat_z(contact.updated_at),
    )
