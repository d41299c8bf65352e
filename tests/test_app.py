"""Ops routes and the error envelope for what no router handles."""

from __future__ import annotations

import gc
from typing import Any

from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_key, make_org


def test_healthz(client: ApiClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_unknown_route_uses_the_envelope(client: ApiClient) -> None:
    response = client.get("/v1/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_uses_the_envelope(client: ApiClient) -> None:
    response = client.put("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_openapi_and_docs(client: ApiClient) -> None:
    assert client.get("/openapi.json").json()["info"]["title"] == "Tidings"
    assert client.get("/docs").status_code == 200


def test_oversized_body_is_refused_before_it_is_read(client: ApiClient) -> None:
    response = client.post(
        "/v1/audiences", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_huge_page_is_empty_not_an_overflow(client: ApiClient, db: Session) -> None:
    secret = make_key(db, make_org(db))
    response = client.get("/v1/templates?page=9223372036854775809", headers=auth(secret))
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_nul_characters_never_cause_a_500(client: ApiClient, db: Session) -> None:
    headers = auth(make_key(db, make_org(db)))
    assert client.get("/v1/templates/tpl_%00", headers=headers).status_code in (400, 404)
    created = client.post(
        "/v1/templates",
        json={"name": "a\u0000b", "channel": "sms", "text": "hi"},
        headers=headers,
    )
    assert created.status_code in (201, 400)
    assert client.get("/v1/suppressions?search=%00", headers=headers).status_code in (200, 400)


def test_a_started_app_freezes_its_start_up_heap_until_it_stops(app: Any) -> None:
    """The heap that exists once the app has started is left out of full garbage collections
    (an import of 10,000 rows triggered one that walked all of it); stopping gives it back."""
    with ApiClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
