"""DESIGN §2: a body in another content type than JSON is a 415 in the envelope, on every JSON
route of the public API; JSON itself is read, as ``application/*+json`` or with no Content-Type."""

from __future__ import annotations

import gzip

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_contact, make_key, make_org
from tidings.models import Audience, Contact

NOT_JSON = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "text/csv",
]


def _headers(key: str, content_type: str | None) -> dict[str, str]:
    headers = auth(key)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


@pytest.mark.parametrize("content_type", NOT_JSON)
@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_a_body_that_is_not_json_is_a_415_and_writes_nothing(
    client: ApiClient, db: Session, content_type: str | None, prefix: str
) -> None:
    org = make_org(db)
    key = make_key(db, org)
    response = client.post(
        f"{prefix}/audiences",
        content=b'{"name": "Newsletter"}',
        headers=_headers(key, content_type),
    )
    assert response.status_code == 415, response.text
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert db.scalar(select(func.count()).select_from(Audience)) == 0


def test_every_kind_of_json_route_checks_it(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    key = make_key(db, org)
    contact = make_contact(db, org, email="a@example.com", name="Before")
    audience = make_audience(db, org, "Members", members=[contact])
    body = b'{"name": "After", "contactIds": []}'
    for method, path in [
        ("PATCH", f"/v1/contacts/{contact.id}"),
        ("PATCH", f"/v1/audiences/{audience.id}"),
        ("POST", f"/v1/audiences/{audience.id}/contacts"),
        ("DELETE", f"/v1/audiences/{audience.id}/contacts"),
        ("POST", "/v1/templates"),
        ("POST", "/v1/suppressions"),
        ("POST", f"/v1/audiences/{audience.id}/send"),
    ]:
        response = client.request(method, path, content=body, headers=_headers(key, "text/plain"))
        assert response.status_code == 415, (method, path, response.text)
    db.expire_all()
    assert db.get(Contact, contact.id).name == "Before"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
        None,  # no Content-Type at all: what requests.post(url, data=json.dumps(...)) sends
    ],
)
def test_json_content_types_are_read(
    client: ApiClient, db: Session, content_type: str | None
) -> None:
    key = make_key(db, make_org(db))
    response = client.post(
        "/v1/audiences", content=b'{"name": "Newsletter"}', headers=_headers(key, content_type)
    )
    assert response.status_code == 201, response.text


def test_a_request_without_a_body_passes_whatever_its_content_type(
    client: ApiClient, db: Session
) -> None:
    org = make_org(db)
    key = make_key(db, org)
    audience = make_audience(db, org, "Old")
    listed = client.get("/v1/audiences", headers=_headers(key, "text/plain"))
    assert listed.status_code == 200
    deleted = client.delete(f"/v1/audiences/{audience.id}", headers=_headers(key, "text/plain"))
    assert deleted.status_code == 200, deleted.text


def test_the_csv_import_route_keeps_its_own_types(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    key = make_key(db, org)
    audience = make_audience(db, org, "Imported")
    url = f"/v1/audiences/{audience.id}/import"
    csv = client.post(url, content=b"email\na@example.com\n", headers=_headers(key, "text/csv"))
    assert csv.status_code == 200, csv.text
    xml = client.post(url, content=b"<csv/>", headers=_headers(key, "application/xml"))
    assert xml.status_code == 415


def test_the_document_declares_the_415(client: ApiClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "415" in paths["/v1/audiences"]["post"]["responses"]
    assert "415" in paths["/v1/contacts/{contact_id}"]["patch"]["responses"]


def test_a_request_without_a_valid_key_is_a_401_first(client: ApiClient) -> None:
    for authorization in (None, "Bearer tid_not-a-key"):
        headers = {"Content-Type": "text/plain"}
        if authorization:
            headers["Authorization"] = authorization
        response = client.post("/v1/audiences", content=b"name=x", headers=headers)
        assert response.status_code == 401, authorization
        assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("mount", ["/v1", "/api/v1"])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{bad"),
        ("text/plain", b"name=x"),
        ("application/json", b""),
        # Bodies FastAPI cannot decode at all: not UTF-8, nested past the recursion limit.
        ("application/json", b'{"name": "caf\xe9"}'),
        ("application/json", b"[" * 100_000 + b"]" * 100_000),
    ],
)
def test_the_caller_is_checked_before_the_body(
    client: ApiClient, db: Session, mount: str, content_type: str, body: bytes
) -> None:
    """A body that is not JSON, or not JSON at all, tells a caller the route refuses nothing
    about the body: no key or a wrong one is a 401, a key without the scope a 403."""
    org = make_org(db)
    reader = make_key(db, org, "read:audiences")
    audience = make_audience(db, org)
    headers = {"Content-Type": content_type}
    cases = [
        ("POST", "/audiences", {}, 401),
        ("POST", "/audiences", auth("tid_not-a-key"), 401),
        ("POST", "/audiences", auth(reader), 403),
        ("PATCH", f"/audiences/{audience.id}", auth(reader), 403),
        ("POST", f"/audiences/{audience.id}/contacts", auth(reader), 403),
        ("POST", f"/audiences/{audience.id}/send", auth(reader), 403),
        ("POST", "/contacts", auth(reader), 403),
    ]
    for method, path, key, status in cases:
        response = client.request(
            method, f"{mount}{path}", content=body, headers={**headers, **key}
        )
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["error"]["code"] == (
            "unauthorized" if status == 401 else "forbidden"
        )
    # The key that may call the route hears about its body.
    writer = make_key(db, org, "write:audiences")
    response = client.post(f"{mount}/audiences", content=body, headers={**headers, **auth(writer)})
    assert response.status_code == (415 if content_type == "text/plain" else 400)


def test_an_undecodable_body_says_what_to_send(client: ApiClient, db: Session) -> None:
    headers = {**auth(make_key(db, make_org(db))), "Content-Type": "application/json"}
    response = client.post("/v1/audiences", content=b'{"name": "caf\xe9"}', headers=headers)
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]["message"]


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
def test_a_compressed_body_is_a_415_and_writes_nothing(
    client: ApiClient, db: Session, encoding: str
) -> None:
    """No content coding is decoded (RFC 7694 §3): a gzip body was a 400 about parsing, and a
    plain body labelled ``br`` was taken as it was."""
    org = make_org(db)
    key = make_key(db, org)
    audience = make_audience(db, org)
    headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
    for body in (gzip.compress(b'{"name": "Zipped"}'), b'{"name": "Labelled"}'):
        response = client.post("/v1/audiences", content=body, headers={**headers, **auth(key)})
        assert response.status_code == 415, response.text
        assert response.json()["error"]["details"] == {"contentEncoding": encoding}
        # The caller first: a missing key is still a 401.
        assert client.post("/v1/audiences", content=body, headers=headers).status_code == 401
    imported = client.post(
        f"/v1/audiences/{audience.id}/import",
        content=b"email\na@example.com\n",
        headers={**auth(key), "Content-Type": "text/csv", "Content-Encoding": encoding},
    )
    assert imported.status_code == 415, imported.text
    identity = client.post(
        "/v1/audiences",
        json={"name": "Plain"},
        headers={**auth(key), "Content-Encoding": "identity"},
    )
    assert identity.status_code == 201
    # A request without a body has nothing encoded, whatever its headers say.
    bodyless = client.post(
        f"/v1/audiences/{audience.id}/import",
        headers={**auth(key), "Content-Type": "text/csv", "Content-Encoding": encoding},
    )
    assert bodyless.status_code == 400, bodyless.text  # the CSV is empty
    listed = client.get("/v1/audiences", headers={**auth(key), "Content-Encoding": encoding})
    assert listed.status_code == 200
    assert (
        db.scalar(select(func.count()).select_from(Audience).where(Audience.org_id == org.id)) == 2
    )
    assert db.scalar(select(func.count()).select_from(Contact).where(Contact.org_id == org.id)) == 0


def test_a_retry_without_the_encoding_is_another_request(client: ApiClient, db: Session) -> None:
    """The 415 is not replayed to the corrected retry under the same Idempotency-Key: the
    encoding is part of the request, so the retry is told the key names another request (as
    with another Content-Type), and a new key runs it."""
    headers = {**auth(make_key(db, make_org(db))), "Idempotency-Key": "k-encoding"}
    body = b'{"name": "News"}'
    refused = client.post(
        "/v1/audiences",
        content=body,
        headers={**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert refused.status_code == 415
    fixed = client.post(
        "/v1/audiences", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert fixed.status_code == 409, fixed.text
    assert fixed.json()["error"]["code"] == "idempotency_key_reused"
    headers["Idempotency-Key"] = "k-encoding-2"
    again = client.post(
        "/v1/audiences", content=body, headers={**headers, "Content-Type": "application/json"}
    )
    assert again.status_code == 201, again.text
