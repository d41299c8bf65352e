"""The suppression list over HTTP: normalised addresses, re-adding, search, delete by id or address."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_key, make_org
from tidings.models import Suppression


def _headers(db: Session, scopes: tuple[str, ...] | None = None) -> dict[str, str]:
    org = make_org(db)
    return auth(make_key(db, org, scopes) if scopes else make_key(db, org))


def test_add_normalises_and_readding_returns_the_entry(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    response = client.post(
        "/v1/suppressions",
        json={"address": " Bob@EXAMPLE.com ", "reason": "bounce"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "address", "reason", "createdAt"}
    # Stored as the suppression key: normalised, then lower-cased whole (contacts.normalize).
    assert (body["address"], body["reason"]) == ("bob@example.com", "bounce")
    again = client.post("/v1/suppressions", json={"address": "Bob@example.COM"}, headers=headers)
    assert again.status_code == 200
    assert again.json() == body
    phone = client.post("/v1/suppressions", json={"address": "+1 (415) 555-0100"}, headers=headers)
    assert (phone.status_code, phone.json()["address"], phone.json()["reason"]) == (
        201,
        "+14155550100",
        "manual",
    )
    assert len(db.scalars(select(Suppression)).all()) == 2


def test_invalid_address_or_reason_is_a_400(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    for body in (
        {"address": "not an address"},
        {"address": "a@"},
        {"address": "12"},
        {"address": ""},
        {"address": "a@example.com", "reason": "because"},
        {},
    ):
        response = client.post("/v1/suppressions", json=body, headers=headers)
        assert response.status_code == 400, body
    assert client.get("/v1/suppressions", headers=headers).json()["total"] == 0
    # Text without an @ or a digit is not called a bad phone number.
    named = client.post("/v1/suppressions", json={"address": "not-an-email"}, headers=headers)
    message = named.json()["error"]["message"]
    assert "neither an email address" in message and "invalid phone" not in message


def test_list_search_and_delete(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    ids = {}
    for address in ("ann@example.com", "ben@example.com", "cat@other.org"):
        ids[address] = client.post(
            "/v1/suppressions", json={"address": address}, headers=headers
        ).json()["id"]
    page = client.get("/v1/suppressions?limit=2", headers=headers).json()
    assert (page["total"], page["totalPages"], len(page["data"])) == (3, 2, 2)
    found = client.get("/v1/suppressions?search=EXAMPLE", headers=headers).json()
    assert {s["address"] for s in found["data"]} == {"ann@example.com", "ben@example.com"}

    by_id = client.delete(f"/v1/suppressions/{ids['ann@example.com']}", headers=headers)
    assert by_id.status_code == 200 and by_id.json() == {"success": True}
    by_address = client.delete(
        "/v1/suppressions", params={"address": "ben@EXAMPLE.com"}, headers=headers
    )
    assert by_address.status_code == 200
    assert [
        s["address"] for s in client.get("/api/v1/suppressions", headers=headers).json()["data"]
    ] == ["cat@other.org"]
    missing = client.delete(
        "/v1/suppressions", params={"address": "ann@example.com"}, headers=headers
    )
    assert missing.status_code == 404
    assert client.delete("/v1/suppressions", headers=headers).status_code == 400
    gone = client.delete(f"/v1/suppressions/{ids['ann@example.com']}", headers=headers)
    assert gone.status_code == 404


@pytest.mark.parametrize("query", ["+14155550199", "+1+415+555+0199", "%2B14155550199"])
def test_a_phone_in_the_query_string_may_leave_its_plus_unencoded(
    client: ApiClient, db: Session, query: str
) -> None:
    """A query string reads an unencoded "+" as a space: a phone number's leading one is meant."""
    headers = _headers(db)
    client.post("/v1/suppressions", json={"address": "+1 415 555 0199"}, headers=headers)
    removed = client.delete(f"/v1/suppressions?address={query}", headers=headers)
    assert removed.status_code == 200, removed.text
    assert client.get("/v1/suppressions", headers=headers).json()["total"] == 0


def test_other_organizations_list_is_invisible(client: ApiClient, db: Session) -> None:
    created = client.post(
        "/v1/suppressions", json={"address": "x@example.com"}, headers=_headers(db)
    ).json()
    stranger = _headers(db)
    assert client.get(f"/v1/suppressions/{created['id']}", headers=stranger).status_code == 404
    assert client.delete(f"/v1/suppressions/{created['id']}", headers=stranger).status_code == 404
    by_address = client.delete(
        "/v1/suppressions", params={"address": "x@example.com"}, headers=stranger
    )
    assert by_address.status_code == 404
    assert client.get("/v1/suppressions", headers=stranger).json()["total"] == 0


def test_scopes(client: ApiClient, db: Session) -> None:
    reader = _headers(db, ("read:suppressions",))
    assert client.get("/v1/suppressions", headers=reader).status_code == 200
    body = {"address": "a@example.com"}
    assert client.post("/v1/suppressions", json=body, headers=reader).status_code == 403
    assert client.delete("/v1/suppressions/sup_x", headers=reader).status_code == 403
    other = _headers(db, ("write:audiences",))
    assert client.get("/v1/suppressions", headers=other).status_code == 403


def test_delete_by_address_in_a_json_body(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    client.post("/v1/suppressions", json={"address": "+14155550100"}, headers=headers)
    response = client.request(
        "DELETE", "/v1/suppressions", json={"address": "+1 415 555 0100"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert client.get("/v1/suppressions", headers=headers).json()["total"] == 0


def test_an_entry_is_found_by_its_address_in_the_path(client: ApiClient, db: Session) -> None:
    """As in SendGrid's and Resend's APIs: an address (any spelling) in place of the id."""
    headers = _headers(db)
    for address in ("path@example.com", "+14155550123"):
        client.post("/v1/suppressions", json={"address": address}, headers=headers)
    found = client.get("/v1/suppressions/Path@EXAMPLE.com", headers=headers)
    assert found.status_code == 200 and found.json()["address"] == "path@example.com"
    assert (
        client.get("/v1/suppressions/%2B1%20415%20555%200123", headers=headers).json()["address"]
        == "+14155550123"
    )
    for missing in ("other@example.com", "not-an-address", "sup_unknown"):
        response = client.get(f"/v1/suppressions/{missing}", headers=headers)
        assert response.status_code == 404, missing
    stranger = _headers(db)
    assert client.delete("/v1/suppressions/path@example.com", headers=stranger).status_code == 404
    deleted = client.delete("/v1/suppressions/path@example.com", headers=headers)
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert client.delete("/v1/suppressions/+14155550123", headers=headers).status_code == 200
    assert client.get("/v1/suppressions", headers=headers).json()["total"] == 0
