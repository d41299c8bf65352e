"""``POST /v1/templates/:id/preview``: rendered as delivery renders, with the documented precedence."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tests.campaigns.factories import make_template
from tests.factories import ApiClient, auth, make_contact, make_key, make_org
from tidings.delivery.tokens import read_unsubscribe_token

SOURCE = "{{ name }}|{{ email }}|{{ plan }}|{{ cta }}|{{ unsubscribe_url }}"


def test_request_variables_beat_metadata_beat_builtins(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org, ("read:templates", "read:contacts")))
    template = make_template(
        db, org, subject="For {{ name }}", html="<b>{{ cta }}</b>", text=SOURCE
    )
    contact = make_contact(
        db,
        org,
        email="alice@example.com",
        name="Alice",
        metadata={"name": "Ally", "plan": "gold", "cta": "from metadata"},
    )
    response = client.post(
        f"/v1/templates/{template.id}/preview",
        json={"contactId": contact.id, "variables": {"cta": "<from request>"}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject"] == "For Ally"
    assert body["html"] == "<b>&lt;from request&gt;</b>"
    name, email, plan, cta, link = body["text"].split("|")
    assert (name, email, plan, cta) == ("Ally", "alice@example.com", "gold", "<from request>")
    assert link.endswith("/u/preview")


def test_a_preview_shows_a_contact_only_to_a_key_that_may_read_it(
    client: ApiClient, db: Session
) -> None:
    """Its link unsubscribes nobody: whoever previews is not the recipient, and the contact's
    own link would let a read-only key (or an owner trying it) suppress them."""
    org = make_org(db)
    template = make_template(db, org, text=SOURCE)
    contact = make_contact(db, org, email="alice@example.com", name="Alice")
    url = f"/v1/templates/{template.id}/preview"
    templates_only = auth(make_key(db, org, ("read:templates",)))
    refused = client.post(url, json={"contactId": contact.id}, headers=templates_only)
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"required": "read:contacts"}
    assert "alice" not in refused.text.lower()
    assert client.post(url, json={}, headers=templates_only).status_code == 200
    body = client.post(url, json={"contactId": contact.id}, headers=auth(make_key(db, org))).json()
    link = body["text"].rsplit("|", 1)[1]
    assert read_unsubscribe_token(link.rsplit("/u/", 1)[1]) is None
    assert client.post("/u/" + link.rsplit("/u/", 1)[1]).status_code == 404


def test_builtins_fill_in_without_metadata(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    template = make_template(db, org, text=SOURCE)
    contact = make_contact(db, org, email="bob@example.com", name="Bob")
    body = client.post(
        f"/api/v1/templates/{template.id}/preview", json={"contactId": contact.id}, headers=headers
    ).json()
    assert body["text"].split("|")[:4] == ["Bob", "bob@example.com", "", ""]
    assert body["subject"] == "Weekly update for Bob"


def test_preview_without_a_contact(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    template = make_template(db, org, channel="sms", text="Hi {{ name }} {{ cta }}")
    response = client.post(
        f"/v1/templates/{template.id}/preview", json={"variables": {"cta": 5}}, headers=headers
    )
    assert response.json() == {"subject": None, "html": None, "text": "Hi  5"}


def test_preview_refuses_foreign_contact_and_unstorable_variables(
    client: ApiClient, db: Session
) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    template = make_template(db, org)
    stranger = make_contact(db, make_org(db, name="Other"), email="x@example.com")
    url = f"/v1/templates/{template.id}/preview"
    foreign = client.post(url, json={"contactId": stranger.id}, headers=headers)
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"
    nul = client.post(url, json={"variables": {"a": {"b": "x\u0000"}}}, headers=headers)
    assert nul.status_code == 400
    assert "'a.b' must not contain NUL" in nul.json()["error"]["message"]
    assert (
        client.post("/v1/templates/tpl_nope/preview", json={}, headers=headers).status_code == 404
    )


def test_nested_metadata_and_variables_render(client: ApiClient, db: Session) -> None:
    """Free-form metadata reaches Liquid as objects and lists; a request variable replaces a
    metadata value whole, whatever its shape."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    template = make_template(
        db, org, channel="sms", text="{{ address.city }}|{{ tags | join: ', ' }}|{{ offer.code }}"
    )
    contact = make_contact(
        db,
        org,
        email="n@example.com",
        metadata={"address": {"city": "Oslo"}, "tags": ["vip", "beta"], "offer": {"code": "OLD"}},
    )
    response = client.post(
        f"/v1/templates/{template.id}/preview",
        json={"contactId": contact.id, "variables": {"offer": {"code": "NEW10"}}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "Oslo|vip, beta|NEW10"
