"""Templates over HTTP: CRUD, per-channel shape, slugs, Liquid checked on save, scopes, tenancy."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_key, make_org
from tidings.models import Template

EMAIL = {
    "name": "Weekly Newsletter",
    "channel": "email",
    "subject": "Hi {{ name }}",
    "html": "<p>{{ cta }}</p>",
    "text": "{{ cta }}",
}


def _headers(db: Session, scopes: tuple[str, ...] | None = None) -> dict[str, str]:
    org = make_org(db)
    return auth(make_key(db, org, scopes) if scopes else make_key(db, org))


def test_create_get_list(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    response = client.post("/v1/templates", json=EMAIL, headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "id", "slug", "name", "channel", "subject", "html", "text", "createdAt", "updatedAt",
    }  # fmt: skip
    assert body["id"].startswith("tpl_") and body["slug"] == "weekly-newsletter"
    assert (body["subject"], body["html"], body["text"]) == (
        EMAIL["subject"],
        EMAIL["html"],
        EMAIL["text"],
    )
    assert client.get(f"/v1/templates/{body['id']}", headers=headers).json() == body
    stored = db.scalars(select(Template).where(Template.id == body["id"])).one()
    assert stored.slug == "weekly-newsletter"

    client.post(
        "/v1/templates",
        json={"name": "Order shipped", "channel": "sms", "text": "Shipped!"},
        headers=headers,
    )
    page = client.get("/v1/templates?limit=1", headers=headers).json()
    assert (page["total"], page["totalPages"], len(page["data"])) == (2, 2, 1)
    found = client.get("/v1/templates?search=SHIPPED", headers=headers).json()
    assert [t["name"] for t in found["data"]] == ["Order shipped"]
    padded = client.get("/v1/templates?search=%20shipped%20", headers=headers).json()
    assert [t["name"] for t in padded["data"]] == ["Order shipped"]
    assert client.get("/api/v1/templates?channel=email", headers=headers).json()["total"] == 1


def test_slugs_are_derived_unique_and_explicit_duplicates_conflict(
    client: ApiClient, db: Session
) -> None:
    headers = _headers(db)
    slugs = [client.post("/v1/templates", json=EMAIL, headers=headers).json()["slug"] for _ in "ab"]
    assert slugs == ["weekly-newsletter", "weekly-newsletter-2"]
    explicit = client.post("/v1/templates", json={**EMAIL, "slug": "promo"}, headers=headers)
    assert explicit.json()["slug"] == "promo"
    duplicate = client.post("/v1/templates", json={**EMAIL, "slug": "promo"}, headers=headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "slug_taken"
    bad = client.post("/v1/templates", json={**EMAIL, "slug": "Not A Slug"}, headers=headers)
    assert bad.status_code == 400
    # Another organization may use the same slug.
    other = client.post("/v1/templates", json={**EMAIL, "slug": "promo"}, headers=_headers(db))
    assert other.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**EMAIL, "subject": None}, "subject"),
        ({**EMAIL, "subject": "  "}, "subject"),
        ({**EMAIL, "html": None, "text": None}, "html"),
        ({**EMAIL, "html": None, "text": "   "}, "html"),
        ({**EMAIL, "html": " \n ", "text": None}, "html"),
        ({"name": "S", "channel": "sms", "text": "  "}, "text"),
        ({"name": "S", "channel": "sms", "text": "Hi", "subject": "No"}, "subject"),
        ({"name": "S", "channel": "sms", "text": "Hi", "html": "<p>No</p>"}, "html"),
        ({"name": "S", "channel": "sms"}, "text"),
    ],
)
def test_channel_shape_is_enforced(
    client: ApiClient, db: Session, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/templates", json=body, headers=_headers(db))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "email", "subject": "x", "text": "x"},
        {**EMAIL, "name": ""},
        {**EMAIL, "channel": "fax"},
        {**EMAIL, "extra": 1},
    ],
)
def test_malformed_body_is_a_400(client: ApiClient, db: Session, body: dict[str, Any]) -> None:
    response = client.post("/v1/templates", json=body, headers=_headers(db))
    assert response.status_code == 400


def test_liquid_syntax_error_names_field_and_line(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    body = {**EMAIL, "html": "<p>\nHello {{ name }\n</p>"}
    response = client.post("/v1/templates", json=body, headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "template_syntax_error"
    assert (error["details"]["field"], error["details"]["line"]) == ("html", 2)
    assert "line 2" in error["message"]
    assert client.get("/v1/templates", headers=headers).json()["total"] == 0
    unclosed = client.post("/v1/templates", json={**EMAIL, "text": "{% if x %}"}, headers=headers)
    assert unclosed.status_code == 422


@pytest.mark.parametrize(
    "source",
    [
        "{{ 100 | divided_by: tier }}",
        "{{ 7 | modulo: n }}",
        "{% assign share = 10 | divided_by: n %}{{ share }}",
        "{{ items | first | upcase }} {{ price | times: qty | round: 2 }}",
    ],
)
def test_valid_liquid_that_needs_its_variables_saves(
    client: ApiClient, db: Session, source: str
) -> None:
    """Checked for syntax on save (DESIGN §3): a filter that fails only without its variables is
    valid Liquid; its data arrives with the send."""
    headers = _headers(db)
    body = {"name": "Needs data", "channel": "sms", "text": source}
    response = client.post("/v1/templates", json=body, headers=headers)
    assert response.status_code == 201, response.text


def test_an_unknown_filter_is_refused_on_save(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    body = {"name": "Typo", "channel": "sms", "text": "Hi {{ name | upcas }}"}
    response = client.post("/v1/templates", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert "upcas" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "tag", ['{% include "footer" %}', '{% render "footer" %}', "{% include x %}"]
)
def test_include_and_render_are_refused_with_a_reason(
    client: ApiClient, db: Session, tag: str
) -> None:
    body = {"name": "Parts", "channel": "sms", "text": f"Hi {tag}"}
    response = client.post("/v1/templates", json=body, headers=_headers(db))
    assert response.status_code == 422, response.text
    assert "include and render are not supported" in response.json()["error"]["message"]


def test_a_blank_body_is_no_body(client: ApiClient, db: Session) -> None:
    """Stored as "", a blank HTML body went out as a blank HTML part; it is absent instead, so
    delivery derives it from the text."""
    headers = _headers(db)
    body = {"name": "Blank", "channel": "email", "subject": "s", "html": "", "text": "Real"}
    created = client.post("/v1/templates", json=body, headers=headers)
    assert created.status_code == 201 and created.json()["html"] is None
    url = f"/v1/templates/{created.json()['id']}"
    patched = client.patch(url, json={"html": "<p>Hi</p>", "text": "  \n"}, headers=headers)
    assert (patched.json()["html"], patched.json()["text"]) == ("<p>Hi</p>", None)
    emptied = client.patch(url, json={"html": " "}, headers=headers)
    assert emptied.status_code == 400 and emptied.json()["error"]["details"]["field"] == "html"
    sms = {"name": "Sms", "channel": "sms", "text": "Hi", "html": ""}
    assert client.post("/v1/templates", json=sms, headers=headers).status_code == 201


def test_update_and_delete(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    created = client.post("/v1/templates", json=EMAIL, headers=headers).json()
    client.post("/v1/templates", json={**EMAIL, "slug": "taken"}, headers=headers)
    url = f"/v1/templates/{created['id']}"
    patched = client.patch(url, json={"name": "Renamed", "text": None}, headers=headers)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["text"]) == ("Renamed", None)
    assert patched.json()["html"] == EMAIL["html"]
    assert client.patch(url, json={"subject": "{{ oops"}, headers=headers).status_code == 422
    assert client.patch(url, json={"slug": "taken"}, headers=headers).status_code == 409
    assert client.patch(url, json={"html": None}, headers=headers).status_code == 400
    assert client.patch(url, json={"channel": "sms"}, headers=headers).status_code == 400
    to_sms = {"channel": "sms", "subject": None, "html": None, "text": "Hi"}
    assert client.patch(url, json=to_sms, headers=headers).json()["channel"] == "sms"

    deleted = client.delete(url, headers=headers)
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    assert client.get(url, headers=headers).status_code == 404
    assert client.delete(url, headers=headers).status_code == 404


def test_other_organizations_templates_are_404(client: ApiClient, db: Session) -> None:
    created = client.post("/v1/templates", json=EMAIL, headers=_headers(db)).json()
    stranger = _headers(db)
    url = f"/v1/templates/{created['id']}"
    assert client.get(url, headers=stranger).status_code == 404
    assert client.patch(url, json={"name": "x"}, headers=stranger).status_code == 404
    assert client.delete(url, headers=stranger).status_code == 404
    assert client.post(f"{url}/preview", json={}, headers=stranger).status_code == 404
    assert client.get("/v1/templates", headers=stranger).json()["total"] == 0


def test_scopes(client: ApiClient, db: Session) -> None:
    reader = _headers(db, ("read:templates",))
    assert client.get("/v1/templates", headers=reader).status_code == 200
    assert client.post("/v1/templates", json=EMAIL, headers=reader).status_code == 403
    assert client.get("/v1/templates", headers=_headers(db, ("read:audiences",))).status_code == 403
    assert client.get("/v1/templates").status_code == 401


def test_routes_accept_the_slug_as_well_as_the_id(client: ApiClient, db: Session) -> None:
    headers = _headers(db)
    created = client.post("/v1/templates", json={**EMAIL, "slug": "promo"}, headers=headers).json()
    assert client.get("/v1/templates/promo", headers=headers).json()["id"] == created["id"]
    patched = client.patch("/v1/templates/promo", json={"name": "Promo"}, headers=headers)
    assert patched.json()["name"] == "Promo"
    preview = client.post("/v1/templates/promo/preview", json={}, headers=headers)
    assert preview.status_code == 200
    assert client.delete("/v1/templates/promo", headers=headers).status_code == 200
    assert client.get(f"/v1/templates/{created['id']}", headers=headers).status_code == 404
