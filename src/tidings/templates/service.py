"""Templates: the rules for saving them (channel shape, unique slug, Liquid that parses) and preview.

Templates are referenced in a send by slug or by id, so a slug never looks like an id (ids carry an
underscore, slugs cannot) and one lookup answers both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, or_
from sqlalchemy.orm import Session

from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.config import get_settings
from tidings.contacts.service import ContactNotFound
from tidings.delivery.render import ContactData, check_syntax, render_message, template_variables
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.ids import new_id
from tidings.models import Contact, Template
from tidings.slugs import add_with_chosen_slug, add_with_derived_slug, slug_in_use, slugify
from tidings.templates.schemas import TemplateCreate, TemplateUpdate
from tidings.tenancy import for_org, get_for_org

CONTENT_FIELDS = ("subject", "html", "text")


class TemplateNotFound(NotFound):
    pass


class SlugTaken(Conflict):
    code = "slug_taken"


class TemplateShapeInvalid(ValidationFailed):
    code = "invalid_template"


def check_template_shape(
    channel: str, subject: str | None, html: str | None, text: str | None
) -> None:
    """What each channel needs (400 when missing or refused), then Liquid syntax (422)."""
    if channel == "email":
        if not subject or not subject.strip():
            raise TemplateShapeInvalid(
                "an email template needs a subject", details={"field": "subject"}
            )
        if not (html and html.strip()) and not (text and text.strip()):
            raise TemplateShapeInvalid(
                "an email template needs html, text or both", details={"field": "html"}
            )
    else:
        if not text or not text.strip():
            raise TemplateShapeInvalid("an sms template needs text", details={"field": "text"})
        for field, value in (("subject", subject), ("html", html)):
            if value is not None:
                raise TemplateShapeInvalid(
                    f"an sms template has no {field}; send only text", details={"field": field}
                )
    check_syntax(subject, "subject")
    check_syntax(html, "html", html=True)
    check_syntax(text, "text")


def create_template(session: Session, actor: Principal, data: TemplateCreate) -> Template:
    check_template_shape(data.channel, data.subject, data.html, data.text)

    def make(slug: str) -> Template:
        return Template(
            id=new_id("tpl"),
            org_id=actor.org_id,
            slug=slug,
            name=data.name.strip(),
            channel=data.channel,
            subject=data.subject,
            html=data.html,
            text=data.text,
        )

    if data.slug is None:
        base = slugify(data.name, "template")
        template = add_with_derived_slug(session, Template, actor.org_id, base, make)
    else:
        taken = SlugTaken(f"a template with slug {data.slug!r} exists already; choose another")
        template = add_with_chosen_slug(
            session, Template, actor.org_id, make(data.slug), data.slug, taken
        )
    record_event(session, actor, "template.created", target_type="template", target_id=template.id)
    return template


def get_template(session: Session, org_id: str, reference: str) -> Template:
    """A template by id or by slug: the send call accepts either, so every route does."""
    return resolve_template(session, org_id, reference)


def resolve_template(session: Session, org_id: str, reference: str) -> Template:
    found = session.scalars(
        for_org(Template, org_id).where(or_(Template.id == reference, Template.slug == reference))
    ).first()
    if found is None:
        raise TemplateNotFound(
            f"no template {reference!r} in your organization; give a template slug or id"
        )
    return found


def list_templates_query(org_id: str, search: str | None, channel: str | None) -> Select[Any]:
    stmt = for_org(Template, org_id)
    search = (search or "").strip()  # as the contact and suppression lists read it
    if search:
        stmt = stmt.where(
            or_(
                Template.name.icontains(search, autoescape=True),
                Template.slug.icontains(search, autoescape=True),
            )
        )
    if channel:
        stmt = stmt.where(Template.channel == channel)
    return stmt.order_by(Template.created_at.desc(), Template.id.desc())


def update_template(
    session: Session, actor: Principal, template_id: str, data: TemplateUpdate
) -> Template:
    template = get_template(session, actor.org_id, template_id)
    given = data.model_fields_set
    if "name" in given and data.name is None:
        raise TemplateShapeInvalid("name cannot be null", details={"field": "name"})
    if "slug" in given and data.slug is None:
        raise TemplateShapeInvalid("slug cannot be null", details={"field": "slug"})
    if "channel" in given and data.channel is None:
        raise TemplateShapeInvalid("channel cannot be null", details={"field": "channel"})
    merged = {
        field: getattr(data, field) if field in given else getattr(template, field)
        for field in ("channel", *CONTENT_FIELDS)
    }
    check_template_shape(**merged)
    if data.slug is not None and data.slug != template.slug:
        if slug_in_use(session, Template, actor.org_id, data.slug, exclude_id=template.id):
            raise SlugTaken(f"a template with slug {data.slug!r} exists already; choose another")
        template.slug = data.slug
    if data.name is not None:
        template.name = data.name.strip()
    for field, value in merged.items():
        setattr(template, field, value)
    session.flush()
    record_event(
        session,
        actor,
        "template.updated",
        target_type="template",
        target_id=template.id,
        data={"fields": sorted(given)},
    )
    return template


def delete_template(session: Session, actor: Principal, template_id: str) -> None:
    """Campaigns keep their own snapshot of the template, so deleting it changes no send."""
    template = get_template(session, actor.org_id, template_id)
    session.delete(template)
    session.flush()
    record_event(session, actor, "template.deleted", target_type="template", target_id=template.id)


def preview_template(
    session: Session,
    org_id: str,
    template_id: str,
    contact_id: str | None,
    variables: Mapping[str, Any],
    subject: str | None = None,
) -> dict[str, str | None]:
    """Renders as delivery will: the same renderer and precedence. ``subject`` replaces the
    template's subject, as a send's subject variant does.

    The unsubscribe link is one that no token check accepts: a preview is read by whoever
    previews, and the contact's real link would let a key without ``write:suppressions`` (or an
    owner trying the link) unsubscribe them."""
    template = get_template(session, org_id, template_id)
    if contact_id is not None:
        contact = get_for_org(session, Contact, org_id, contact_id, ContactNotFound)
        data = ContactData(contact.name, contact.email, contact.phone, contact.metadata_ or {})
    else:
        data = ContactData(None, None, None, {})
    link = f"{get_settings().public_url.rstrip('/')}/u/preview"
    rendered = render_message(
        subject=subject if subject is not None else template.subject,
        text=template.text,
        html=template.html,
        variables=template_variables(data, variables, link),
    )
    return {"subject": rendered.subject, "html": rendered.html, "text": rendered.text}
