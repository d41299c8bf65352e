"""HTTP for audiences (seed 000): parse, call one service function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tidings.audiences import service
from tidings.audiences.schemas import (
    AudienceAdded,
    AudienceCreate,
    AudienceOut,
    AudienceRemoved,
    AudienceUpdate,
    ContactIds,
    audience_added,
    audience_out,
    audience_removed,
)
from tidings.auth import Principal
from tidings.contacts.schemas import ContactOut, ObjectId, Search, SuccessOut, contact_out
from tidings.contacts.service import contacts_total, narrows
from tidings.deps import DbSession, require_scope
from tidings.errors import error_responses
from tidings.pagination import Page, PageParams, page_params, paginate

router = APIRouter(tags=["audiences"])

Reader = Annotated[Principal, Depends(require_scope("read:audiences"))]
Writer = Annotated[Principal, Depends(require_scope("write:audiences"))]
Paging = Annotated[PageParams, Depends(page_params)]


@router.get(
    "/audiences", response_model=Page[AudienceOut], responses=error_responses(400, 401, 403)
)
def list_audiences(session: DbSession, principal: Reader, paging: Paging) -> Page[AudienceOut]:
    """Audiences of your organization, newest first."""
    stmt = service.list_audiences_stmt(principal.org_id)
    return paginate(session, stmt, paging, audience_out)


@router.post(
    "/audiences",
    status_code=201,
    response_model=AudienceOut,
    responses=error_responses(400, 401, 403, 409),
)
def create_audience(session: DbSession, principal: Writer, body: AudienceCreate) -> AudienceOut:
    """Create an audience. The slug is derived from the name (``-2``, ``-3``… if taken) unless
    given; an explicit slug that is taken is a 409."""
    audience = service.create_audience(
        session, principal, name=body.name, description=body.description, slug=body.slug
    )
    return audience_out(audience)


@router.get(
    "/audiences/{audience_id}",
    response_model=AudienceOut,
    responses=error_responses(401, 403, 404),
)
def get_audience(session: DbSession, principal: Reader, audience_id: ObjectId) -> AudienceOut:
    return audience_out(service.get_audience(session, principal.org_id, audience_id))


@router.patch(
    "/audiences/{audience_id}",
    response_model=AudienceOut,
    responses=error_responses(400, 401, 403, 404, 409),
)
def update_audience(
    session: DbSession, principal: Writer, audience_id: ObjectId, body: AudienceUpdate
) -> AudienceOut:
    """Any subset of {name, description, slug}. A slug another audience has is a 409."""
    changes = body.model_dump(include=body.model_fields_set)
    return audience_out(service.update_audience(session, principal, audience_id, changes))


@router.delete(
    "/audiences/{audience_id}",
    response_model=SuccessOut,
    responses=error_responses(401, 403, 404, 409),
)
def delete_audience(session: DbSession, principal: Writer, audience_id: ObjectId) -> SuccessOut:
    """Delete an audience (its contacts stay). 409 ``audience_in_use`` while a campaign to it is
    scheduled or in progress."""
    service.delete_audience(session, principal, audience_id)
    return SuccessOut()


@router.get(
    "/audiences/{audience_id}/contacts",
    response_model=Page[ContactOut],
    responses=error_responses(400, 401, 403, 404),
)
def list_members(
    session: DbSession,
    principal: Reader,
    audience_id: ObjectId,
    paging: Paging,
    search: Search = None,
) -> Page[ContactOut]:
    """Contacts in this audience, newest first."""
    audience = service.get_audience(session, principal.org_id, audience_id)
    stmt = service.members_stmt(session, audience, search)
    # Without a search the maintained count is the total: no COUNT over the membership table.
    total = None if narrows(search) else audience.contact_count
    return paginate(session, stmt, paging, contact_out, total=total)


@router.post(
    "/audiences/{audience_id}/contacts",
    response_model=AudienceAdded,
    responses=error_responses(400, 401, 403, 404),
)
def add_members(
    session: DbSession, principal: Writer, audience_id: ObjectId, body: ContactIds
) -> AudienceAdded:
    """Add contacts (at most 10,000 ids per call). Unknown ids are a 404 that names them, and
    nothing is added; contacts already in the audience are not counted in ``added``."""
    audience, added = service.add_contacts(session, principal, audience_id, body.contactIds)
    return audience_added(audience, added)


_REMOVE_DOC = """Remove contacts (at most 10,000 ids per call). Ids that are not members are ignored;
``removed`` counts the members actually removed."""


@router.delete(
    "/audiences/{audience_id}/contacts",
    response_model=AudienceRemoved,
    responses=error_responses(400, 401, 403, 404),
    description=_REMOVE_DOC,
)
def remove_members(
    session: DbSession, principal: Writer, audience_id: ObjectId, body: ContactIds
) -> AudienceRemoved:
    audience, removed = service.remove_contacts(session, principal, audience_id, body.contactIds)
    return audience_removed(audience, removed)


@router.post(
    "/audiences/{audience_id}/contacts/remove",
    response_model=AudienceRemoved,
    responses=error_responses(400, 401, 403, 404),
    description=_REMOVE_DOC + "\n\nThe same as `DELETE /audiences/{id}/contacts`, for clients "
    "that cannot send a body with DELETE.",
)
def remove_members_post(
    session: DbSession, principal: Writer, audience_id: ObjectId, body: ContactIds
) -> AudienceRemoved:
    audience, removed = service.remove_contacts(session, principal, audience_id, body.contactIds)
    return audience_removed(audience, removed)


@router.get(
    "/audiences/{audience_id}/available-contacts",
    response_model=Page[ContactOut],
    responses=error_responses(400, 401, 403, 404),
)
def list_available(
    session: DbSession,
    principal: Reader,
    audience_id: ObjectId,
    paging: Paging,
    search: Search = None,
) -> Page[ContactOut]:
    """Contacts of your organization that are not in this audience (for a picker)."""
    audience = service.get_audience(session, principal.org_id, audience_id)
    stmt = service.available_stmt(session, audience, search)
    # Without a search: every contact of the organization but the members, both maintained.
    total = (
        None
        if narrows(search)
        else max(0, contacts_total(session, principal.org_id) - audience.contact_count)
    )
    return paginate(session, stmt, paging, contact_out, total=total)
