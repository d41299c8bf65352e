"""HTTP for contacts: parse, call one service function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tidings.auth import Principal
from tidings.contacts import service
from tidings.contacts.schemas import (
    ContactCreate,
    ContactOut,
    ContactUpdate,
    ObjectId,
    Search,
    SuccessOut,
    contact_out,
)
from tidings.deps import DbSession, require_scope
from tidings.errors import error_responses
from tidings.pagination import Page, PageParams, page_params, paginate

router = APIRouter(tags=["contacts"])

Reader = Annotated[Principal, Depends(require_scope("read:contacts"))]
Writer = Annotated[Principal, Depends(require_scope("write:contacts"))]
Paging = Annotated[PageParams, Depends(page_params)]


@router.get("/contacts", response_model=Page[ContactOut], responses=error_responses(400, 401, 403))
def list_contacts(
    session: DbSession, principal: Reader, paging: Paging, search: Search = None
) -> Page[ContactOut]:
    """Contacts of your organization, newest first."""
    stmt = service.list_contacts_stmt(session, principal.org_id, search)
    # Without a search the maintained count is the total: no COUNT over the organization.
    total = None if service.narrows(search) else service.contacts_total(session, principal.org_id)
    return paginate(session, stmt, paging, contact_out, total=total)


@router.post(
    "/contacts",
    status_code=201,
    response_model=ContactOut,
    responses=error_responses(400, 401, 403, 409),
)
def create_contact(session: DbSession, principal: Writer, body: ContactCreate) -> ContactOut:
    """Create a contact. Email or phone is required; the email is validated, the phone must be in
    international format and is stored as E.164. 409 if the address belongs to another contact."""
    contact = service.create_contact(
        session,
        principal,
        email=body.email,
        phone=body.phone,
        name=body.name,
        metadata=body.metadata,
    )
    return contact_out(contact)


@router.get(
    "/contacts/{contact_id}",
    response_model=ContactOut,
    responses=error_responses(401, 403, 404),
)
def get_contact(session: DbSession, principal: Reader, contact_id: ObjectId) -> ContactOut:
    return contact_out(service.get_contact(session, principal.org_id, contact_id))


@router.patch(
    "/contacts/{contact_id}",
    response_model=ContactOut,
    responses=error_responses(400, 401, 403, 404, 409),
)
def update_contact(
    session: DbSession, principal: Writer, contact_id: ObjectId, body: ContactUpdate
) -> ContactOut:
    """Any subset of {email, phone, name, metadata}; ``metadata`` replaces the whole object."""
    changes = body.model_dump(include=body.model_fields_set)
    return contact_out(service.update_contact(session, principal, contact_id, changes))


@router.delete(
    "/contacts/{contact_id}",
    response_model=SuccessOut,
    responses=error_responses(401, 403, 404),
)
def delete_contact(session: DbSession, principal: Writer, contact_id: ObjectId) -> SuccessOut:
    """Delete a contact; it leaves every audience it was in (their counts drop by one)."""
    service.delete_contact(session, principal, contact_id)
    return SuccessOut()
