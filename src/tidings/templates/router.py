"""HTTP for templates: parse, call one service function, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from tidings.auth import Principal
from tidings.contacts.schemas import SuccessOut, Text
from tidings.deps import DbSession, check_scope, require_scope
from tidings.errors import error_responses
from tidings.models import Template
from tidings.pagination import Page, PageParams, page_params, paginate
from tidings.templates import service
from tidings.templates.schemas import (
    Channel,
    PreviewOut,
    PreviewRequest,
    TemplateCreate,
    TemplateOut,
    TemplateUpdate,
)
from tidings.timeutil import isoformat_z

router = APIRouter(tags=["templates"])

Reader = Annotated[Principal, Depends(require_scope("read:templates"))]
Writer = Annotated[Principal, Depends(require_scope("write:templates"))]
TemplateRef = Annotated[str, Path(description="The template's id or its slug.")]


def template_out(template: Template) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        slug=template.slug,
        name=template.name,
        channel=template.channel,
        subject=template.subject,
        html=template.html,
        text=template.text,
        createdAt=isoformat_z(template.created_at),
        updatedAt=isoformat_z(template.updated_at),
    )


@router.get("/templates", responses=error_responses(400, 401, 403))
def list_templates(
    session: DbSession,
    principal: Reader,
    params: Annotated[PageParams, Depends(page_params)],
    search: Annotated[Text | None, Query(description="Matches name or slug")] = None,
    channel: Channel | None = None,
) -> Page[TemplateOut]:
    stmt = service.list_templates_query(principal.org_id, search, channel)
    return paginate(session, stmt, params, template_out)


@router.post(
    "/templates",
    status_code=201,
    responses=error_responses(400, 401, 403, 409, 422),
    description="400 when the channel's fields are missing or refused (email: subject and html "
    "and/or text; sms: text only), 409 when an explicit slug is taken, 422 when Liquid does not "
    "parse (the message names the field, line and problem).",
)
def create_template(session: DbSession, principal: Writer, body: TemplateCreate) -> TemplateOut:
    return template_out(service.create_template(session, principal, body))


@router.get("/templates/{template_id}", responses=error_responses(401, 403, 404))
def get_template(session: DbSession, principal: Reader, template_id: TemplateRef) -> TemplateOut:
    return template_out(service.get_template(session, principal.org_id, template_id))


@router.patch("/templates/{template_id}", responses=error_responses(400, 401, 403, 404, 409, 422))
def update_template(
    session: DbSession, principal: Writer, template_id: TemplateRef, body: TemplateUpdate
) -> TemplateOut:
    return template_out(service.update_template(session, principal, template_id, body))


@router.delete(
    "/templates/{template_id}",
    responses=error_responses(401, 403, 404),
    description="Campaigns already scheduled keep their own copy of the template.",
)
def delete_template(session: DbSession, principal: Writer, template_id: TemplateRef) -> SuccessOut:
    service.delete_template(session, principal, template_id)
    return SuccessOut()


@router.post(
    "/templates/{template_id}/preview",
    responses=error_responses(400, 401, 403, 404, 422),
    description="Renders subject, html and text for one of your contacts (optional; then the "
    "key needs `read:contacts` too) with `variables`; precedence: request variables > contact "
    "metadata > name, email, phone. `unsubscribe_url` is an inert `/u/preview` link: each "
    "recipient's own is in what delivery sends.",
)
def preview_template(
    session: DbSession, principal: Reader, template_id: TemplateRef, body: PreviewRequest
) -> PreviewOut:
    if body.contactId is not None:
        check_scope(principal, "read:contacts")  # the preview shows the contact's data
    rendered = service.preview_template(
        session, principal.org_id, template_id, body.contactId, body.variables
    )
    return PreviewOut(**rendered)
