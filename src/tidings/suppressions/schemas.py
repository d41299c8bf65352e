"""Pydantic shapes of the suppression list."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tidings.contacts.schemas import Text

Reason = Literal["manual", "unsubscribe", "bounce", "complaint"]


class SuppressionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: Text = Field(
        min_length=1,
        max_length=320,
        description="An email address, or a phone number in international format (+14155550100).",
    )
    reason: Reason = "manual"


class SuppressionAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: Text = Field(min_length=1, max_length=320)


class SuppressionOut(BaseModel):
    id: str
    address: str
    reason: Reason
    createdAt: str
