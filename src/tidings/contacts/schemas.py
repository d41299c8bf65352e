"""Contact request and response shapes (DESIGN.md §3: camelCase, like seed 000's objects).

Request models ignore unknown fields, so a client echoing ``id``, ``organizationId`` or timestamps
back cannot assign them: only the fields declared here ever reach the service.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from tidings.contacts.limits import MAX_METADATA_KEY_LENGTH, MAX_METADATA_KEYS
from tidings.models import Contact
from tidings.timeutil import isoformat_z

MAX_JSON_DEPTH = 10
SEARCH_MAX = 200


def _storable(value: str) -> str:
    """Text both databases store as it is, refused here (a 400) rather than in the database (a
    500): PostgreSQL's text and jsonb hold no NUL, and no encoding holds an unpaired UTF-16
    surrogate, which JSON can still spell (``"\\ud800"``)."""
    problem = _unstorable(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _unstorable(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode: it holds an unpaired surrogate (\\ud800-\\udfff)"
    return None


# Every request string carries this, so both backends accept exactly the same text. Constraints go
# on ``str`` itself, before it: ``Annotated[str, StringConstraints(...), Storable]``.
Storable = AfterValidator(_storable)
Text = Annotated[str, Storable]


def _json_object(value: Any) -> Any:
    """Free-form JSON (seed 002: contacts carry "free-form metadata"): any nesting of objects,
    lists, strings, numbers, booleans and null, within what both backends store alike. Nested
    values reach templates as they are: ``{{ address.city }}``, ``{{ tags | join: ", " }}``."""
    if not isinstance(value, dict):
        raise _refused("must be a JSON object")
    _check_json(value, "", 1)
    return value


def _check_json(value: Any, path: str, depth: int) -> None:
    """Storable text (``_storable``), finite numbers (JSON has no NaN), objects and lists at most
    MAX_JSON_DEPTH levels deep. ``path`` names the offending value in the message."""
    where = repr(path) if path else "the object"
    if isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
        raise _refused(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unstorable(key)
            if problem is not None:
                raise _refused(f"a key of {where} {problem}")
            _check_json(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, str):
        problem = _unstorable(value)
        if problem is not None:
            raise _refused(f"{where} {problem}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise _refused(f"{where} is not a finite number")


def _refused(message: str) -> PydanticCustomError:
    # A custom error type keeps pydantic's "Value error, " prefix out of the message users read.
    return PydanticCustomError("json_object", message)


# A JSON object of anything JSON holds (``_json_object``): a contact's metadata, a send's variables.
JsonObject = Annotated[dict[str, Any], BeforeValidator(_json_object)]
MetadataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_LENGTH), Storable
]


def _few_enough_keys(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_METADATA_KEYS:
        raise _refused(f"has {len(value)} keys; at most {MAX_METADATA_KEYS} are allowed")
    return value


# The count is checked here rather than with ``Field(max_length=...)``, which the document would
# show as an object's ``maxLength`` (a string keyword JSON Schema ignores there).
Metadata = Annotated[
    dict[MetadataKey, Any],
    BeforeValidator(_json_object),
    AfterValidator(_few_enough_keys),
    Field(json_schema_extra={"maxProperties": MAX_METADATA_KEYS}),
]
Email = Annotated[str, StringConstraints(max_length=320), Storable]
Phone = Annotated[str, StringConstraints(max_length=64), Storable]
Name = Annotated[str, StringConstraints(max_length=200), Storable]
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
    """``{"success": true}``: what a DELETE answers (seed 000)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

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
