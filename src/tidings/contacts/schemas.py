"""Contact request and response shapes (DESIGN.md §3: camelCase, like seed 000's objects).

Request models ignore unknown fields, so a client echoing ``id``, ``organizationId`` or timestamps
back cannot assign them: only the fields declared here ever reach the service.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from tidings.models import Contact
from tidings.timeutil import isoformat_z

MAX_METADATA_KEYS = 100

# A flat object: template variables are scalars, and nested values would not survive a CSV round trip.
Scalar = str | int | float | bool | None
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Metadata = Annotated[dict[MetadataKey, Scalar], Field(max_length=MAX_METADATA_KEYS)]
Email = Annotated[str, StringConstraints(max_length=320)]
Phone = Annotated[str, StringConstraints(max_length=64)]
Name = Annotated[str, StringConstraints(max_length=200)]


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
