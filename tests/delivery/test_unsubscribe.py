"""``/u/{token}``: the page, the RFC 8058 one-click POST, and its effect on later sends."""

from __future__ import annotations

from itsdangerous.encoding import base64_encode
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.delivery.conftest import SmtpSink, drain, fresh
from tests.factories import ApiClient, make_audience, make_campaign, make_contact, make_org
from tidings.delivery.tokens import _serializer, unsubscribe_token
from tidings.models import AuditEvent, Message, Suppression


def test_get_shows_a_confirmation_form_and_changes_nothing(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    token = unsubscribe_token(org.id, "ann@example.com")

    response = client.get(f"/u/{token}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'method="post"' in response.text and "ann@example.com" in response.text
    # The form posts back to the page's own address, whatever path a proxy serves it under.
    assert "action=" not in response.text
    # A link checker's HEAD looks, and changes nothing either.
    assert client.head(f"/u/{token}").status_code == 200
    assert db.scalars(select(Suppression)).all() == []


def test_one_click_post_suppresses_idempotently(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    token = unsubscribe_token(org.id, "ann@example.com")

    for _ in range(2):
        response = client.post(
            f"/u/{token}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text

    fresh(db)
    rows = db.scalars(select(Suppression)).all()
    assert [(s.org_id, s.address, s.reason) for s in rows] == [
        (org.id, "ann@example.com", "unsubscribe")
    ]
    events = db.scalars(select(AuditEvent).where(AuditEvent.org_id == org.id)).all()
    assert [(e.action, e.target_id) for e in events] == [("suppression.unsubscribed", rows[0].id)]


def test_invalid_or_altered_token_is_a_404_page(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    token = unsubscribe_token(org.id, "ann@example.com")

    for bad in ("nonsense", token[:-2] + ("AA" if not token.endswith("AA") else "BB")):
        assert client.get(f"/u/{bad}").status_code == 404
        assert client.post(f"/u/{bad}").status_code == 404
    assert db.scalars(select(Suppression)).all() == []


def test_a_signed_token_holding_unstorable_text_is_a_404_page(
    client: ApiClient, db: Session
) -> None:
    """Signed with the secret (the development placeholder is public), a token may carry any
    JSON: a lone surrogate or NUL in it was a 500 while the page was written."""
    org = make_org(db)
    signer = _serializer().make_signer()
    for payload in (
        f'["{org.id}","\\ud800@example.com"]',
        f'["{org.id}","a\\u0000@example.com"]',
        '["\\udfff","ann@example.com"]',
    ):
        token = signer.sign(base64_encode(payload.encode())).decode()
        assert client.get(f"/u/{token}").status_code == 404, payload
        assert client.post(f"/u/{token}").status_code == 404, payload
    assert db.scalars(select(Suppression)).all() == []


def test_unsubscribing_from_a_delivered_email_stops_later_sends(
    client: ApiClient, db: Session, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    person = make_contact(db, org, email="ann@example.com")
    audience = make_audience(db, org, members=[person])
    make_campaign(db, org, audience, [person])
    drain()
    [received] = smtp_sink.handler.received
    link = str(received.message["List-Unsubscribe"]).strip("<>")
    path = link.removeprefix("http://127.0.0.1:8000")

    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    second, _ = make_campaign(db, org, audience, [person])
    drain()

    assert len(smtp_sink.handler.received) == 1
    fresh(db)
    [message] = db.scalars(select(Message).where(Message.campaign_id == second.id)).all()
    assert message.status == "suppressed"
