"""The Send drawer, its preview, and the campaign view.

The form is turned into the API's own ``SendRequest`` and handed to ``send_to_audience``, so the
dashboard schedules exactly what ``POST /v1/audiences/:id/send`` would, with the same validation.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, available_timezones

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.audiences.service import get_audience
from tidings.auth import Principal
from tidings.campaigns.reports import get_campaign, status_counts
from tidings.campaigns.schemas import SendRequest
from tidings.campaigns.service import send_response, send_to_audience, sms_sender_required
from tidings.campaigns.variants import letters, variant_index
from tidings.dashboard.drawers import attempt, owner_principal, validation_message
from tidings.dashboard.routes import CurrentUser, templates
from tidings.deps import DbSession
from tidings.models import Audience, AudienceMember, Organization
from tidings.templates.service import list_templates_query, preview_template, resolve_template

router = APIRouter(include_in_schema=False)
MAX_PICKER_TEMPLATES = 200


@lru_cache(maxsize=1)
def time_zones() -> list[str]:
    return sorted(zone for zone in available_timezones() if "/" in zone or zone == "UTC")


def send_drawer_context(
    session: Session, actor: Principal, audience: Audience, channel: str
) -> dict[str, Any]:
    channel = channel if channel in ("email", "sms") else "email"
    org = session.get(Organization, actor.org_id)
    picker = session.scalars(
        list_templates_query(actor.org_id, None, channel).limit(MAX_PICKER_TEMPLATES)
    ).all()
    return {
        "audience": audience,
        "channel": channel,
        "templates": picker,
        "zones": time_zones(),
        "org_zone": org.timezone if org else "UTC",
        "sender_required": channel == "sms" and sms_sender_required(),
    }


class SendForm:
    """The drawer's fields, as the browser posts them (repeated fields arrive as lists)."""

    def __init__(
        self,
        channel: str,
        template: str,
        sender: str,
        ramp_minutes: str,
        scheduled_date: str,
        scheduled_time: str,
        zone: str,
        var_key: list[str],
        var_value: list[str],
        subject_variants: list[str],
    ) -> None:
        self.channel, self.template, self.sender = channel, template, sender.strip()
        self.ramp_minutes = ramp_minutes.strip() or "0"
        self.scheduled_date, self.scheduled_time = scheduled_date.strip(), scheduled_time.strip()
        self.zone = zone
        self.variables = {
            k.strip(): v for k, v in zip(var_key, var_value, strict=False) if k.strip()
        }
        self.subject_variants = [s for s in subject_variants if s.strip()]

    def to_request(self) -> SendRequest:
        scheduled_local = (
            f"{self.scheduled_date} {self.scheduled_time or '00:00'}"
            if self.scheduled_date
            else None
        )
        return SendRequest.model_validate(
            {
                "channel": self.channel,
                "from": self.sender or None,
                "template": self.template,
                "variables": self.variables,
                "ramp_minutes": _number_or_text(self.ramp_minutes),
                "subject_variants": self.subject_variants or None,
                "scheduled_local": scheduled_local,
                "scheduled_at_tz": self.zone or None,
            }
        )


def _number_or_text(text: str) -> int | str:
    """A form's number arrives as text, and ``SendRequest`` reads only a JSON number as one; text
    that is no whole number stays text, which it refuses with a message."""
    try:
        return int(text)
    except ValueError:
        return text


def _form(
    channel: Annotated[str, Form()] = "email",
    template: Annotated[str, Form()] = "",
    sender: Annotated[str, Form(alias="from")] = "",
    ramp_minutes: Annotated[str, Form()] = "0",
    scheduled_date: Annotated[str, Form()] = "",
    scheduled_time: Annotated[str, Form()] = "",
    scheduled_at_tz: Annotated[str, Form()] = "",
    var_key: Annotated[list[str] | None, Form()] = None,
    var_value: Annotated[list[str] | None, Form()] = None,
    subject_variants: Annotated[list[str] | None, Form()] = None,
) -> SendForm:
    return SendForm(
        channel,
        template,
        sender,
        ramp_minutes,
        scheduled_date,
        scheduled_time,
        scheduled_at_tz,
        var_key or [],
        var_value or [],
        subject_variants or [],
    )


def _local(value: str, zone: str) -> str:
    instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return instant.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


@router.post("/overview/audiences/{audience_id}/send", response_class=HTMLResponse)
def send_from_drawer(
    request: Request,
    session: DbSession,
    viewer: CurrentUser,
    audience_id: str,
    form: Annotated[SendForm, Depends(_form)],
) -> Response:
    actor = owner_principal(viewer)
    if form.scheduled_time and not form.scheduled_date:
        # Without a date the time would be dropped and the send would go out now.
        missing_date = "Choose a date for the local time, or clear the time to send now."
        return templates.TemplateResponse(request, "_send_result.html", {"error": missing_date})
    try:
        send_request = form.to_request()
    except ValidationError as exc:
        return templates.TemplateResponse(
            request, "_send_result.html", {"error": validation_message(exc)}
        )
    campaign, error = attempt(
        session, lambda: send_to_audience(session, actor, audience_id, send_request)
    )
    if campaign is None:
        return templates.TemplateResponse(request, "_send_result.html", {"error": error})
    result = send_response(campaign)
    zone = form.zone or "UTC"
    return templates.TemplateResponse(
        request,
        "_send_result.html",
        {
            "error": None,
            "result": result,
            "zone": zone,
            "starts_local": _local(result["starts_at"], zone),
            "ends_local": _local(result["ends_at"], zone),
        },
    )


def _first_member_id(session: Session, org_id: str, audience_id: str) -> str | None:
    """The member the send would schedule first: recipients are ordered by contact id."""
    return session.scalar(
        select(AudienceMember.contact_id)
        .where(AudienceMember.org_id == org_id, AudienceMember.audience_id == audience_id)
        .order_by(AudienceMember.contact_id)
        .limit(1)
    )


@router.post("/overview/audiences/{audience_id}/preview", response_class=HTMLResponse)
def preview_from_drawer(
    request: Request,
    session: DbSession,
    viewer: CurrentUser,
    audience_id: str,
    form: Annotated[SendForm, Depends(_form)],
) -> Response:
    """Renders what the first member would receive, with the subject variant the send would
    assign them (the same SHA-256 rule), through the API's own preview."""
    actor = owner_principal(viewer)
    audience = get_audience(session, actor.org_id, audience_id)
    contact_id = _first_member_id(session, actor.org_id, audience.id)

    def render() -> dict[str, Any]:
        template = resolve_template(session, actor.org_id, form.template)
        subject, label = None, "a member"
        if contact_id is not None and form.subject_variants:
            index = variant_index(contact_id, len(form.subject_variants))
            subject = form.subject_variants[index]
            label = f"variant {letters(len(form.subject_variants))[index]}"
        preview = preview_template(
            session, actor.org_id, template.id, contact_id, form.variables, subject=subject
        )
        return {"preview": preview, "variant": label}

    rendered, error = attempt(session, render)
    who = "the first member" if contact_id else "an empty audience (no member yet)"
    return templates.TemplateResponse(
        request, "_preview.html", {"error": error, "contact_label": who, **(rendered or {})}
    )


def _campaign_context(session: Session, org_id: str, campaign_id: str) -> dict[str, Any]:
    campaign = get_campaign(session, org_id, campaign_id)
    counts, variants = status_counts(session, org_id, [campaign])[campaign.id]
    audience = session.get(Audience, campaign.audience_id) if campaign.audience_id else None
    subject_list = campaign.subject_variants or []
    return {
        "campaign": campaign,
        "counts": counts,
        "variants": variants,
        "total": campaign.scheduled,
        "audience_name": audience.name if audience else "a deleted audience",
        "subjects": dict(zip(letters(len(subject_list)), subject_list, strict=True)),
    }


@router.get("/overview/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(
    request: Request, session: DbSession, viewer: CurrentUser, campaign_id: str
) -> Response:
    context = _campaign_context(session, viewer.user.org_id, campaign_id)
    return templates.TemplateResponse(request, "campaign.html", {"viewer": viewer, **context})


@router.get("/overview/campaigns/{campaign_id}/progress", response_class=HTMLResponse)
def campaign_progress(
    request: Request, session: DbSession, viewer: CurrentUser, campaign_id: str
) -> Response:
    context = _campaign_context(session, viewer.user.org_id, campaign_id)
    return templates.TemplateResponse(request, "_campaign_progress.html", context)
