"""Text neither database can store, sent in any request string: a 400 in the envelope that says
why, never a 500, on both backends. JSON can spell an unpaired UTF-16 surrogate (``"\\ud800"``),
which no encoding holds; PostgreSQL's text and jsonb hold no NUL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session

from tests.campaigns.factories import make_template
from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org

LONE = "\ud800"  # json.dumps writes it as the escape "\ud800"

CASES: list[tuple[str, str, dict[str, object]]] = [
    ("POST", "/v1/contacts", {"email": "a@b.co", "name": f"x{LONE}"}),
    ("POST", "/v1/contacts", {"email": "a@b.co", "metadata": {"k": f"v{LONE}"}}),
    ("POST", "/v1/contacts", {"email": "a@b.co", "metadata": {"k": {"deep": [LONE]}}}),
    ("POST", "/v1/contacts", {"email": "a@b.co", "metadata": {f"k{LONE}": 1}}),
    ("PATCH", "/v1/contacts/{contact}", {"metadata": {"k": LONE}}),
    ("POST", "/v1/audiences", {"name": f"a{LONE}"}),
    ("PATCH", "/v1/audiences/{audience}", {"description": LONE}),
    ("POST", "/v1/templates", {"name": "n", "channel": "email", "subject": f"s{LONE}", "html": "h"}),
    ("POST", "/v1/templates", {"name": "n", "channel": "email", "subject": "s", "html": LONE}),
    ("POST", "/v1/templates", {"name": "n", "channel": "sms", "text": LONE}),
    ("PATCH", "/v1/templates/{template}", {"text": LONE}),
    ("POST", "/v1/templates/{template}/preview", {"variables": {"cta": LONE}}),
    ("POST", "/v1/suppressions", {"address": f"a{LONE}@b.co"}),
    ("POST", "/v1/audiences/{audience}/send", {"template": "weekly-newsletter", "variables": {"cta": LONE}}),
    ("POST", "/v1/audiences/{audience}/send", {"template": "weekly-newsletter", "subject_variants": ["A", LONE]}),
    ("POST", "/v1/audiences/{audience}/send", {"template": f"weekly{LONE}"}),
    ("POST", "/v1/audiences/{audience}/send", {"template": "weekly-newsletter", "from": f"a{LONE}@b.co"}),
    ("POST", "/v1/audiences/{audience}/contacts", {"contactIds": [f"con_{LONE}"]}),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), CASES)
def test_unpaired_surrogates_are_a_400(
    client: ApiClient, db: Session, method: str, path: str, body: dict[str, object]
) -> None:
    org = make_org(db)
    headers = {**auth(make_key(db, org)), "Content-Type": "application/json"}
    contact = make_contact(db, org, email="c@example.com")
    ids = {
        "contact": contact.id,
        "audience": make_audience(db, org, members=[contact]).id,
        "template": make_template(db, org).id,
    }
    response = client.request(method, path.format(**ids), content=json.dumps(body), headers=headers)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    # Ours names the surrogate; pydantic's own, on fields with length limits, says "unicode".
    assert "surrogate" in message or "unicode string" in message, message


def test_nul_in_template_text_is_a_400(client: ApiClient, db: Session) -> None:
    headers = auth(make_key(db, make_org(db)))
    body = {"name": "n", "channel": "sms", "text": "hi\u0000"}
    response = client.post("/v1/templates", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["error"]["message"]
