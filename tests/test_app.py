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


def test_wrong_method_names_every_method_of_the_path(client: ApiClient) -> None:
    """Each method of a path is its own route; the 405 names them all, not the first one's."""
    for method, path, allowed in [
        ("PUT", "/v1/audiences", "GET, HEAD, POST"),
        ("PUT", "/api/v1/audiences/aud_x", "GET, HEAD, PATCH, DELETE"),
        ("PATCH", "/v1/suppressions", "GET, HEAD, POST, DELETE"),
        ("GET", "/v1/audiences/aud_x/contacts/remove", "POST"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed
        assert allowed.split(", ")[-1] in response.json()["error"]["message"]


def test_head_is_served_wherever_get_is(client: ApiClient, db: Session) -> None:
    """RFC 9110 §9.3.2: the GET's status and headers, no body. Monitors checking
    ``HEAD /healthz`` got a 405."""
    headers = auth(make_key(db, make_org(db)))
    for path, key in (("/healthz", {}), ("/v1/audiences", headers), ("/api/v1/contacts", headers)):
        got = client.get(path, headers=key)
        head = client.head(path, headers=key)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-length"] == got.headers["content-length"], path
        assert head.headers["content-type"] == got.headers["content-type"], path
    assert client.head("/v1/audiences").status_code == 401  # checked as the GET is
    refused = client.head("/v1/audiences/aud_x/contacts/remove")
    assert (refused.status_code, refused.headers["allow"], refused.content) == (405, "POST", b"")


def test_openapi_and_docs(client: ApiClient) -> None:
    assert client.get("/openapi.json").json()["info"]["title"] == "Tidings"
    assert client.get("/docs").status_code == 200


def test_openapi_documents_the_errors_the_server_sends(client: ApiClient) -> None:
    """A request that fails validation is a 400 envelope, never FastAPI's 422 ``{"detail"}``;
    any body may be a 413; every public operation takes a bearer key."""
    spec = client.get("/openapi.json").json()
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            where = f"{method} {path}"
            responses = operation["responses"]
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == envelope, where
            if operation.get("parameters") or "requestBody" in operation:
                assert "400" in responses, where
            if "requestBody" in operation:
                assert "413" in responses, where
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearerAuth": []}], where


def test_a_validation_error_names_the_field_as_the_client_spelt_it(
    client: ApiClient, db: Session
) -> None:
    """Not pydantic's name for a branch of a nullable field (``name.function-after[...]``), nor
    the null branch's "Input should be None" beside the real reason."""
    headers = auth(make_key(db, make_org(db)))
    audience = client.post("/v1/audiences", json={"name": "News"}, headers=headers).json()
    response = client.patch(f"/v1/audiences/{audience['id']}", json={"name": ""}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [
        {"field": "name", "in": "body", "message": "String should have at least 1 character"}
    ]
    assert response.json()["error"]["message"].startswith("'name': ")


def test_a_body_that_is_not_a_json_object_says_so(client: ApiClient, db: Session) -> None:
    headers = {**auth(make_key(db, make_org(db))), "Content-Type": "application/json"}
    for body, says in [
        (b'{"name": "News",}', "The request body is not valid JSON (Expecting property name"),
        (b"", "The request needs a JSON body."),
        (b"[1]", "The request body must be a JSON object."),
    ]:
        response = client.post("/v1/audiences", content=body, headers=headers)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["message"].startswith(says), error
        assert error["details"][0]["field"] == ""


def test_openapi_states_the_constraints_the_server_enforces(client: ApiClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["SuccessOut"]["required"] == ["success"]
    assert schemas["ErrorBody"]["required"] == ["code", "message", "details"]
    for model in ("TemplateCreate", "TemplateUpdate", "AudienceCreate", "AudienceUpdate"):
        assert schemas[model]["properties"]["slug"]["pattern"] == "^[a-z0-9]+(?:-[a-z0-9]+)*$"
    metadata = schemas["ContactCreate"]["properties"]["metadata"]["anyOf"][0]
    assert metadata["maxProperties"] == 100 and "maxLength" not in metadata
    for model in ("SendRequest", "PreviewRequest"):  # null is read as no variables
        assert {"type": "null"} in schemas[model]["properties"]["variables"]["anyOf"]


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
