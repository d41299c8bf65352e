"""Every way a send request can be wrong: a clear error, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.campaigns.factories import count, make_template
from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.config import get_settings
from tidings.models import Audience, Campaign, Message

BASE = {"channel": "email", "from": "hello@yourdomain.com", "template": "weekly-newsletter"}

CASES: list[tuple[str, dict[str, Any], int, str]] = [
    ("channel mismatch", {"template": "sms-note"}, 422, "channel_mismatch"),
    ("sms template as email", {"channel": "sms", "template": "weekly-newsletter"}, 422, "channel_mismatch"),
    ("unknown channel", {"channel": "fax"}, 400, "validation_error"),
    ("from not an address", {"from": "not-an-address"}, 400, "invalid_from"),
    ("from with two addresses", {"from": "a@b.io, c@d.io"}, 400, "invalid_from"),
    ("from with a newline", {"from": "a@b.io\nBcc: x@y.io"}, 400, "invalid_from"),
    ("sms from not a number", {"channel": "sms", "template": "sms-note", "from": "+1 555"}, 400, "invalid_from"),
    ("unknown time zone", {"scheduled_local": "2027-05-01 09:00", "scheduled_at_tz": "Mars/Base"}, 400, "unknown_time_zone"),
    ("bad scheduled_local", {"scheduled_local": "May 1st, 9am"}, 400, "invalid_scheduled_local"),
    ("scheduled_local without time", {"scheduled_local": "2027-05-01"}, 400, "invalid_scheduled_local"),
    ("scheduled_local in year 9999", {"scheduled_local": "9999-12-31 23:59"}, 400, "invalid_scheduled_local"),
    ("scheduled in the past", {"scheduled_local": "2020-01-01 09:00"}, 422, "scheduled_in_past"),
    ("scheduled before 1900", {"scheduled_local": "1899-12-31 23:59"}, 422, "scheduled_in_past"),
    ("scheduled in year 1", {"scheduled_local": "0001-01-01 00:00"}, 422, "scheduled_in_past"),
    ("empty time zone", {"scheduled_local": "2027-05-01 09:00", "scheduled_at_tz": ""}, 400, "unknown_time_zone"),
    ("dst gap", {"scheduled_local": "2027-03-14 02:30", "scheduled_at_tz": "America/New_York"}, 422, "nonexistent_local_time"),
    ("one variant", {"subject_variants": ["Only"]}, 400, "validation_error"),
    ("six variants", {"subject_variants": list("abcdef")}, 400, "validation_error"),
    ("empty variant", {"subject_variants": ["A subject", ""]}, 400, "validation_error"),
    ("blank variant", {"subject_variants": ["A subject", "   "]}, 400, "validation_error"),
    ("variant with bad liquid", {"subject_variants": ["Ok", "Hi {{ name"]}, 422, "template_syntax_error"),
    ("variants on sms", {"channel": "sms", "template": "sms-note", "from": None, "subject_variants": ["a", "b"]}, 422, "subject_variants_email_only"),
    ("ramp -1", {"ramp_minutes": -1}, 400, "validation_error"),
    ("ramp 1441", {"ramp_minutes": 1441}, 400, "validation_error"),
    ("ramp not a number", {"ramp_minutes": "soon"}, 400, "validation_error"),
    ("ramp as text", {"ramp_minutes": "60"}, 400, "validation_error"),
    ("ramp as a boolean", {"ramp_minutes": True}, 400, "validation_error"),
    ("ramp with a fraction", {"ramp_minutes": 1.5}, 400, "validation_error"),
    ("variables with NUL", {"variables": {"cta": {"text": "x\u0000"}}}, 400, "validation_error"),
    ("variables too deep", {"variables": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": 1}}}}}}}}}}}}, 400, "validation_error"),
    ("variables not an object", {"variables": ["a"]}, 400, "validation_error"),
    ("unknown field", {"scheduled_locale": "2027-05-01 09:00"}, 400, "validation_error"),
    ("no template", {"template": None}, 400, "validation_error"),
    ("unknown template", {"template": "nope"}, 404, "not_found"),
]  # fmt: skip


def _world(db: Session) -> tuple[dict[str, str], Audience]:
    """A key, and an audience of one member with an email and a phone, with an email template
    (``weekly-newsletter``) and an SMS one (``sms-note``)."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    contact = make_contact(db, org, email="a@example.com", phone="+14155550100")
    audience = make_audience(db, org, members=[contact])
    make_template(db, org)
    make_template(db, org, slug="sms-note", channel="sms", text="Hi")
    return headers, audience


@pytest.mark.parametrize(("case", "change", "status", "code"), CASES, ids=[c[0] for c in CASES])
def test_invalid_send_is_refused_and_writes_nothing(
    client: ApiClient, db: Session, case: str, change: dict[str, Any], status: int, code: str
) -> None:
    headers, audience = _world(db)
    body = {**BASE, **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post(f"/v1/audiences/{audience.id}/send", json=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert (count(db, Campaign), count(db, Message)) == (0, 0)


def test_sms_sender_may_be_a_number_or_an_id(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    audience = make_audience(db, org, members=[make_contact(db, org, phone="+14155550100")])
    make_template(db, org, slug="sms-note", channel="sms", text="Hi")
    for sender, stored in (("+1 415 555 0199", "+14155550199"), ("Tidings", "Tidings")):
        body = {"channel": "sms", "template": "sms-note", "from": sender}
        response = client.post(f"/v1/audiences/{audience.id}/send", json=body, headers=headers)
        assert response.status_code == 201, response.text
        db.commit()  # a fresh snapshot: the app wrote in another session
        campaign = db.get(Campaign, response.json()["campaign_id"])
        assert campaign is not None and campaign.from_address == stored


def test_email_sender_keeps_its_display_name(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    audience = make_audience(db, org, members=[make_contact(db, org, email="a@example.com")])
    make_template(db, org)
    for sender, stored in (
        ('"Acme, Inc" <news@Acme.EXAMPLE>', '"Acme, Inc" <news@acme.example>'),
        ("Zoë Café <zoe@example.com>", "Zoë Café <zoe@example.com>"),
    ):
        body = {**BASE, "from": sender}
        response = client.post(f"/v1/audiences/{audience.id}/send", json=body, headers=headers)
        assert response.status_code == 201, response.text
        db.commit()  # a fresh snapshot: the app wrote in another session
        campaign = db.get(Campaign, response.json()["campaign_id"])
        assert campaign is not None and campaign.from_address == stored


def test_a_send_without_from_uses_the_server_default(client: ApiClient, db: Session) -> None:
    """Email falls back on TIDINGS_EMAIL_FROM (which has a default); SMS on TIDINGS_SMS_FROM, or
    none at all into the default file outbox."""
    headers, audience = _world(db)
    for body in ({"template": "weekly-newsletter"}, {"template": "sms-note"}):
        response = client.post(f"/v1/audiences/{audience.id}/send", json=body, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["scheduled"] == 1
        db.commit()
        campaign = db.get(Campaign, response.json()["campaign_id"])
        assert campaign is not None and campaign.from_address is None


def test_an_sms_send_for_the_api_needs_a_sender(
    client: ApiClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through an SMS API a message without a sender cannot go out: refused up front, nothing
    written, unless the server has TIDINGS_SMS_FROM."""
    monkeypatch.setenv("TIDINGS_SMS_TRANSPORT", "twilio://AC1:token@api.twilio.test")
    get_settings.cache_clear()
    org = make_org(db)
    headers = auth(make_key(db, org))
    audience = make_audience(db, org, members=[make_contact(db, org, phone="+14155550100")])
    make_template(db, org, slug="sms-note", channel="sms", text="Hi")
    url = f"/v1/audiences/{audience.id}/send"
    refused = client.post(url, json={"template": "sms-note"}, headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "missing_from"
    assert "TIDINGS_SMS_FROM" in refused.json()["error"]["message"]
    assert (count(db, Campaign), count(db, Message)) == (0, 0)
    monkeypatch.setenv("TIDINGS_SMS_FROM", "+14155550199")
    get_settings.cache_clear()
    assert client.post(url, json={"template": "sms-note"}, headers=headers).status_code == 201
