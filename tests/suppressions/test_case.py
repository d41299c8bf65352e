"""A suppression matches an address in any case, at send time and again at delivery time."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.delivery.conftest import drain, fresh
from tests.factories import (
    ApiClient,
    auth,
    make_audience,
    make_campaign,
    make_contact,
    make_key,
    make_org,
)
from tidings.ids import new_id
from tidings.models import Message, Template


def test_suppression_is_stored_lower_case(client: ApiClient, db: Session) -> None:
    headers = auth(make_key(db, make_org(db)))
    response = client.post(
        "/v1/suppressions", json={"address": "Alice@Example.COM"}, headers=headers
    )
    assert response.status_code == 201
    assert response.json()["address"] == "alice@example.com"


def test_send_skips_a_differently_cased_suppression(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    members = [
        make_contact(db, org, email="Alice@example.com"),
        make_contact(db, org, email="bob@example.com"),
    ]
    audience = make_audience(db, org, "List", members=members)
    db.add(
        Template(
            id=new_id("tpl"),
            org_id=org.id,
            slug="t",
            name="T",
            channel="email",
            subject="Hi",
            text="Hello",
        )
    )
    db.commit()
    client.post("/v1/suppressions", json={"address": "ALICE@example.com"}, headers=headers)
    response = client.post(
        f"/v1/audiences/{audience.id}/send",
        json={"template": "t", "from": "news@acme.example.com"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert (response.json()["scheduled"], response.json()["suppressed"]) == (1, 1)


def test_worker_rechecks_in_any_case(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    alice = make_contact(db, org, email="Alice@example.com")
    audience = make_audience(db, org, "List", members=[alice])
    make_campaign(db, org, audience, [alice])
    # Suppressed after scheduling, spelled differently: the worker must still hold it back.
    client.post("/v1/suppressions", json={"address": "alice@EXAMPLE.com"}, headers=headers)
    drain()
    fresh(db)
    assert db.scalars(select(Message.status)).all() == ["suppressed"]
