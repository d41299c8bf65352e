"""Pydantic shapes of the send call (snake_case, exactly as seed 002 writes it), campaigns and
messages (camelCase, like every resource after seed 000)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from tidings.campaigns.schedule import MAX_RAMP_MINUTES
from tidings.campaigns.variants import MAX_VARIANTS, MIN_VARIANTS
from tidings.contacts.schemas import Storable, Text
from tidings.templates.schemas import Channel, Variables

Subject = Annotated[str, StringConstraints(min_length=1), Storable]
CampaignStatus = Literal["scheduled", "in_progress", "completed", "cancelled"]
MessageStatus = Literal["scheduled", "sending", "sent", "failed", "cancelled", "suppressed"]


class SendRequest(BaseModel):
    """Unknown fields are refused: a misspelt ``scheduled_local`` must not silently send now."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel: Channel | None = Field(
        default=None, description="email or sms; defaults to the template's channel."
    )
    from_: Text | None = Field(
        default=None,
        alias="from",
        max_length=320,
        description="Sender: for email an address, optionally 'Name <address>'; for sms an "
        "E.164 number or an alphanumeric sender id. Without it, the server's TIDINGS_EMAIL_FROM "
        "or TIDINGS_SMS_FROM.",
    )
    template: Text = Field(min_length=1, max_length=200, description="Template slug or id.")
    variables: Variables = Field(
        default_factory=dict,
        description="Any JSON object (nested objects and lists too); wins over contact "
        "metadata with the same key.",
    )
    ramp_minutes: int | None = Field(
        default=0,
        ge=0,
        le=MAX_RAMP_MINUTES,
        description="Spread the sends evenly over this many minutes (0-1440); 0 sends at once.",
    )
    subject_variants: list[Subject] | None = Field(
        default=None,
        min_length=MIN_VARIANTS,
        max_length=MAX_VARIANTS,
        description="2-5 email subjects (Liquid) for an A/B test; each contact gets one "
        "deterministically from its id.",
    )
    scheduled_local: Text | None = Field(
        default=None,
        description="Local wall time 'YYYY-MM-DD HH:MM' (seconds optional); absent: now.",
        examples=["2027-05-01 09:00"],
    )
    scheduled_at_tz: Text | None = Field(
        default=None,
        description="IANA time zone of scheduled_local; defaults to the organization's.",
        examples=["America/New_York"],
    )

    @field_validator("ramp_minutes", mode="before")
    @classmethod
    def _a_json_number(cls, value: Any) -> Any:
        """A number (``60``, or ``60.0``, which JSON Schema counts as an integer), not ``true``
        or ``"60"``, which pydantic's lax mode would read as 1 and 60 minutes."""
        if isinstance(value, bool | str):
            raise PydanticCustomError("int_type", "Input should be an integer number of minutes")
        return value

    @field_validator("subject_variants")
    @classmethod
    def _no_blank_variant(cls, value: list[str] | None) -> list[str] | None:
        for index, subject in enumerate(value or []):
            if not subject.strip():
                raise PydanticCustomError(
                    "empty_subject", f"subject_variants[{index}] is empty; give a subject"
                )
        return value


class SendResponse(BaseModel):
    audience_id: str
    total: int = Field(description="Audience members.")
    scheduled: int = Field(description="Rows inserted into messages with status 'scheduled'.")
    suppressed: int = Field(description="Members whose address is on the suppression list.")
    starts_at: str
    ends_at: str
    campaign_id: str
    skipped: int = Field(
        description="Members without an address for the channel, or whose address (in any "
        "case) an earlier member by contact id already receives: one message per mailbox."
    )


class CampaignOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    audienceId: str | None = Field(description="null once the audience has been deleted.")
    templateId: str | None
    channel: Channel
    from_: str | None = Field(alias="from")
    status: CampaignStatus
    subject: str | None
    subjectVariants: list[str] | None
    variables: dict[str, Any]
    rampMinutes: int
    startsAt: str
    endsAt: str
    total: int
    scheduled: int
    suppressed: int
    skipped: int
    counts: dict[str, int] = Field(description="Messages per status, now.")
    variants: dict[str, dict[str, int]] = Field(
        description="Messages per status for each subject variant letter (A, B, ...)."
    )
    createdAt: str
    updatedAt: str
    completedAt: str | None
    cancelledAt: str | None


class MessageOut(BaseModel):
    id: str
    campaignId: str
    contactId: str
    channel: Channel
    to: str
    status: MessageStatus
    subjectVariant: str | None
    scheduledAt: str
    sentAt: str | None
    metadata: dict[str, Any]
    error: str | None
    providerId: str | None
    attempts: int
    createdAt: str
    updatedAt: str
