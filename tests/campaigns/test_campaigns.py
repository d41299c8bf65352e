"""Campaigns and messages over HTTP: list, counts per status and variant, cancel, filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.campaigns.factories import make_template
from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.campaigns.service import audience_has_active_campaign
from tidings.models import Campaign, Message


def _setup(db: Session, n: int = 4) -> tuple[Any, dict[str, str], Any, list[Any]]:
    org = make_org(db)
    contacts = [make_contact(db, org, email=f"c{i}@example.com") for i in range(n)]
    audience = make_audience(db, org, members=contacts)
    make_template(db, org)
    return org, auth(make_key(db, org)), audience, contacts


def _send(client: ApiClient, headers: dict[str, str], audience_id: str, **extra: Any) -> str:
    body = {"channel": "email", "from": "hi@example.com", "template": "weekly-newsletter", **extra}
    response = client.post(f"/v1/audiences/{audience_id}/send", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["campaign_id"])


def test_get_campaign_counts_per_status_and_variant(client: ApiClient, db: Session) -> None:
    _, headers, audience, _ = _setup(db, n=12)
    campaign_id = _send(client, headers, audience.id, subject_variants=["One", "Two"])
    first = db.scalars(select(Message).where(Message.campaign_id == campaign_id)).first()
    assert first is not None
    db.execute(update(Message).where(Message.id == first.id).values(status="sent"))
    db.commit()

    response = client.get(f"/v1/campaigns/{campaign_id}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == campaign_id
    assert (body["audienceId"], body["channel"], body["from"]) == (
        audience.id,
        "email",
        "hi@example.com",
    )
    assert (body["status"], body["subjectVariants"], body["rampMinutes"]) == (
        "scheduled",
        ["One", "Two"],
        0,
    )
    assert (body["total"], body["scheduled"], body["suppressed"], body["skipped"]) == (12, 12, 0, 0)
    assert body["counts"]["scheduled"] == 11 and body["counts"]["sent"] == 1
    assert set(body["variants"]) == {"A", "B"}
    assert sum(v["scheduled"] + v["sent"] for v in body["variants"].values()) == 12
    letter = first.metadata_["subject_variant"]
    assert body["variants"][letter]["sent"] == 1
    assert body["createdAt"].endswith("Z") and body["startsAt"].endswith("Z")


def test_list_campaigns_filters_and_paginates(client: ApiClient, db: Session) -> None:
    org, headers, audience, contacts = _setup(db)
    other_audience = make_audience(db, org, name="Other", members=contacts[:1])
    ids = [_send(client, headers, audience.id) for _ in range(3)]
    other_id = _send(client, headers, other_audience.id)
    page = client.get("/v1/campaigns?limit=2", headers=headers).json()
    assert (page["total"], page["totalPages"], len(page["data"])) == (4, 2, 2)
    assert page["data"][0]["counts"]["scheduled"] in (1, 4)
    by_audience = client.get(f"/v1/campaigns?audienceId={audience.id}", headers=headers).json()
    assert {c["id"] for c in by_audience["data"]} == set(ids)
    client.post(f"/v1/campaigns/{ids[0]}/cancel", headers=headers)
    cancelled = client.get("/v1/campaigns?status=cancelled", headers=headers).json()
    assert [c["id"] for c in cancelled["data"]] == [ids[0]]
    assert other_id not in {c["id"] for c in by_audience["data"]}
    assert client.get("/v1/campaigns?status=bogus", headers=headers).status_code == 400
    assert client.get("/api/v1/campaigns", headers=headers).json()["total"] == 4


def test_cancel_cancels_remaining_messages(client: ApiClient, db: Session) -> None:
    _, headers, audience, _ = _setup(db)
    campaign_id = _send(client, headers, audience.id, ramp_minutes=60)
    sent = db.scalars(select(Message).where(Message.campaign_id == campaign_id)).first()
    assert sent is not None
    db.execute(update(Message).where(Message.id == sent.id).values(status="sent"))
    db.commit()

    response = client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["cancelledAt"].endswith("Z")
    assert body["counts"]["cancelled"] == 3 and body["counts"]["sent"] == 1
    db.commit()
    statuses = db.scalars(select(Message.status).where(Message.campaign_id == campaign_id))
    assert sorted(statuses) == ["cancelled", "cancelled", "cancelled", "sent"]

    again = client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "campaign_not_cancellable"


def test_completed_campaign_cannot_be_cancelled(client: ApiClient, db: Session) -> None:
    _, headers, audience, _ = _setup(db)
    campaign_id = _send(client, headers, audience.id)
    db.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="completed"))
    db.commit()
    response = client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=headers)
    assert response.status_code == 409


def test_campaign_scopes(client: ApiClient, db: Session) -> None:
    org, headers, audience, _ = _setup(db)
    campaign_id = _send(client, headers, audience.id)
    reader = auth(make_key(db, org, ("read:campaigns",)))
    assert client.get(f"/v1/campaigns/{campaign_id}", headers=reader).status_code == 200
    assert client.get("/v1/messages", headers=reader).status_code == 200
    assert client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=reader).status_code == 403
    audiences_only = auth(make_key(db, org, ("write:audiences",)))
    assert client.get("/v1/campaigns", headers=audiences_only).status_code == 403


def test_foreign_campaign_and_message_are_404(client: ApiClient, db: Session) -> None:
    _, headers, audience, _ = _setup(db)
    campaign_id = _send(client, headers, audience.id)
    message = db.scalars(select(Message).where(Message.campaign_id == campaign_id)).first()
    assert message is not None
    _, other_headers, _, _ = _setup(db)
    assert client.get(f"/v1/campaigns/{campaign_id}", headers=other_headers).status_code == 404
    cancel = client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=other_headers)
    assert cancel.status_code == 404
    assert client.get(f"/v1/messages/{message.id}", headers=other_headers).status_code == 404
    listed = client.get(f"/v1/messages?campaignId={campaign_id}", headers=other_headers).json()
    assert listed["total"] == 0


def test_messages_list_filters_and_get(client: ApiClient, db: Session) -> None:
    _, headers, audience, contacts = _setup(db)
    campaign_id = _send(client, headers, audience.id, subject_variants=["a", "b"])
    _send(client, headers, audience.id)
    all_messages = client.get("/v1/messages", headers=headers).json()
    assert all_messages["total"] == 8
    mine = client.get(f"/v1/messages?campaignId={campaign_id}", headers=headers).json()
    assert mine["total"] == 4
    by_contact = client.get(f"/v1/messages?contactId={contacts[0].id}", headers=headers).json()
    assert by_contact["total"] == 2
    assert {m["to"] for m in by_contact["data"]} == {"c0@example.com"}
    scheduled = client.get("/v1/messages?status=scheduled&limit=3", headers=headers).json()
    assert (scheduled["total"], len(scheduled["data"])) == (8, 3)
    assert client.get("/v1/messages?status=nope", headers=headers).status_code == 400

    one = client.get(f"/v1/messages/{mine['data'][0]['id']}", headers=headers)
    assert one.status_code == 200
    message = one.json()
    assert set(message) >= {
        "id", "campaignId", "contactId", "channel", "to", "status", "scheduledAt", "sentAt",
        "metadata", "error", "providerId", "attempts",
    }  # fmt: skip
    assert (message["campaignId"], message["status"], message["attempts"]) == (
        campaign_id,
        "scheduled",
        0,
    )
    assert message["metadata"]["subject_variant"] == message["subjectVariant"] in ("A", "B")
    assert message["sentAt"] is None and message["scheduledAt"].endswith("Z")
    assert client.get("/v1/messages/msg_nope", headers=headers).status_code == 404


def test_filters_take_every_spelling_and_refuse_two_that_disagree(
    client: ApiClient, db: Session
) -> None:
    """DESIGN §3 says "filter by campaign, status, contact"; objects say ``campaignId``; the send
    is snake_case. An unread spelling would silently list everything."""
    _, headers, audience, contacts = _setup(db)
    campaign_id = _send(client, headers, audience.id)
    _send(client, headers, audience.id)

    def total(query: str) -> int:
        response = client.get(f"/v1/messages?{query}", headers=headers)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    for spelling in ("campaignId", "campaign", "campaign_id"):
        assert total(f"{spelling}={campaign_id}") == 4
        assert total(f"{spelling}=cmp_nope") == 0
    for spelling in ("contactId", "contact", "contact_id"):
        assert total(f"{spelling}={contacts[0].id}") == 2
    assert total(f"campaign={campaign_id}&campaignId={campaign_id}") == 4
    assert total(f"campaign={campaign_id}&campaignId=") == 4  # an empty one filters by nothing
    assert total("campaignId=") == 8
    clash = client.get(f"/v1/messages?campaign={campaign_id}&campaign_id=cmp_x", headers=headers)
    assert clash.status_code == 400
    assert clash.json()["error"]["code"] == "validation_error"
    for spelling in ("audienceId", "audience", "audience_id"):
        listed = client.get(f"/v1/campaigns?{spelling}={audience.id}", headers=headers).json()
        assert listed["total"] == 2
        other = client.get(f"/v1/campaigns?{spelling}=aud_nope", headers=headers).json()
        assert other["total"] == 0


def test_audience_has_active_campaign(client: ApiClient, db: Session) -> None:
    org, headers, audience, _ = _setup(db)
    assert not audience_has_active_campaign(db, org.id, audience.id)
    campaign_id = _send(client, headers, audience.id)
    db.commit()
    assert audience_has_active_campaign(db, org.id, audience.id)
    other = make_org(db, name="Other")
    assert not audience_has_active_campaign(db, other.id, audience.id)
    db.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="in_progress"))
    db.commit()
    assert audience_has_active_campaign(db, org.id, audience.id)
    client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=headers)
    db.commit()
    assert not audience_has_active_campaign(db, org.id, audience.id)


def test_deleting_the_template_keeps_the_campaign_snapshot(client: ApiClient, db: Session) -> None:
    _, headers, audience, _ = _setup(db)
    campaign_id = _send(client, headers, audience.id)
    assert client.delete("/v1/templates/weekly-newsletter", headers=headers).status_code == 200
    body = client.get(f"/v1/campaigns/{campaign_id}", headers=headers).json()
    assert body["templateId"] is None
    assert body["subject"] == "Weekly update for {{ name }}"
    assert body["counts"]["scheduled"] == 4


def test_a_campaign_its_messages_and_its_completion_share_one_moment(
    client: ApiClient, db: Session
) -> None:
    """A campaign completed at once (everyone suppressed) did not complete before it was made,
    and its messages were not made before it."""
    _, headers, audience, contacts = _setup(db, n=2)
    for contact in contacts:
        added = client.post("/v1/suppressions", json={"address": contact.email}, headers=headers)
        assert added.status_code == 201, added.text
    nobody = client.get(f"/v1/campaigns/{_send(client, headers, audience.id)}", headers=headers)
    assert nobody.json()["status"] == "completed"
    assert nobody.json()["completedAt"] == nobody.json()["createdAt"]
    _, headers, audience, _ = _setup(db, n=3)
    campaign_id = _send(client, headers, audience.id)
    campaign = client.get(f"/v1/campaigns/{campaign_id}", headers=headers).json()
    messages = client.get(f"/v1/messages?campaign={campaign_id}", headers=headers).json()["data"]
    assert {m["createdAt"] for m in messages} == {campaign["createdAt"]}


def test_deleting_an_audience_keeps_its_campaigns_and_their_messages(
    client: ApiClient, db: Session
) -> None:
    """The record of what was sent to whom (and which subject variant each got) outlives the
    audience; only an active campaign keeps the audience from being deleted."""
    _, headers, audience, _ = _setup(db)
    campaign_id = _send(client, headers, audience.id, subject_variants=["One", "Two"])
    url = f"/v1/audiences/{audience.id}"
    assert client.delete(url, headers=headers).status_code == 409
    assert client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=headers).status_code == 200
    assert client.delete(url, headers=headers).status_code == 200
    campaign = client.get(f"/v1/campaigns/{campaign_id}", headers=headers)
    assert campaign.status_code == 200
    assert campaign.json()["audienceId"] is None and campaign.json()["total"] == 4
    messages = client.get(f"/v1/messages?campaign={campaign_id}", headers=headers).json()
    assert messages["total"] == 4
    assert {m["metadata"]["subject_variant"] for m in messages["data"]} <= {"A", "B"}
    listed = client.get("/v1/campaigns", headers=headers).json()["data"]
    assert [c["id"] for c in listed] == [campaign_id]
