"""Authorization: every public operation by every scope. Exactly the scopes the OpenAPI document
states (``x-required-scopes``, derived from the route's dependencies) open an operation; ``write:X``
opens ``read:X``; revoked keys are refused at once; dashboard members cannot use owner actions.

A request that the scope admits may still fail later (an unknown id is a 404, an empty body a 400);
what matters here is that a refused scope is a 403 *before* anything else happens.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_key, make_org, make_user
from tests.security.world import changed_tables, fingerprint
from tidings.auth import ALL_SCOPES, create_dashboard_session, revoke_api_key
from tidings.models import ApiKey


def _operations(app: Any) -> list[tuple[str, str, list[str]]]:
    found = []
    for path, ops in app.openapi()["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in ops.items():
            found.append(
                (method.upper(), re.sub(r"\{[^}]+\}", "nope_0", path), op.get("x-required-scopes"))
            )
    return found


def _opens(held: set[str], required: list[str]) -> bool:
    def has(scope: str) -> bool:
        verb, _, resource = scope.partition(":")
        return scope in held or (verb == "read" and f"write:{resource}" in held)

    return all(has(s) for s in required)


def test_every_public_operation_documents_its_scopes(app: Any) -> None:
    missing = [(m, p) for m, p, scopes in _operations(app) if not scopes]
    assert not missing, f"operations without x-required-scopes: {missing}"
    for _, _, scopes in _operations(app):
        assert set(scopes) <= set(ALL_SCOPES)


def test_exactly_the_documented_scopes_open_each_operation(
    client: ApiClient, db: Session, app: Any
) -> None:
    org = make_org(db)
    keys = {scope: auth(make_key(db, org, (scope,))) for scope in ALL_SCOPES}
    before = fingerprint(db)
    failures = []
    for method, path, required in _operations(app):
        grants: list[tuple[set[str], dict[str, str]]] = [({s}, h) for s, h in keys.items()]
        grants.append((set(required), auth(make_key(db, org, tuple(required)))))
        for held, headers in grants:
            response = client.request(method, path, headers=headers, json={})
            opened = response.status_code not in (401, 403)
            if opened != _opens(held, required):
                failures.append(f"{method} {path} with {sorted(held)}: {response.status_code}")
            elif not opened and response.json()["error"]["details"] is None:
                failures.append(f"{method} {path}: 403 does not name the scope")
    assert not failures, "\n".join(failures)
    # Nothing the refused (or the 404-ing) requests did may have left a trace, beyond the keys.
    assert changed_tables(before, fingerprint(db)) == ["api_keys"]


def test_revoked_key_is_refused_on_the_next_request(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    secret = make_key(db, org)
    assert client.get("/v1/audiences", headers=auth(secret)).status_code == 200
    key_id = db.query(ApiKey.id).filter(ApiKey.org_id == org.id).scalar()
    assert revoke_api_key(db, org.id, key_id)
    db.commit()
    for path in ("/v1/audiences", "/api/v1/contacts", "/v1/campaigns"):
        response = client.get(path, headers=auth(secret))
        assert response.status_code == 401, response.text
    response = client.post(
        "/api/internal/audiences/nope_0/import-csv",
        headers={**auth(secret), "Content-Type": "text/csv"},
        content=b"email\na@example.com\n",
    )
    assert response.status_code == 401


def test_public_keys_are_refused_on_the_internal_route(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    audience = make_audience(db, org)
    before = fingerprint(db)
    response = client.post(
        f"/api/internal/audiences/{audience.id}/import-csv",
        headers={**auth(make_key(db, org)), "Content-Type": "text/csv"},
        content=b"email\na@example.com\n",
    )
    assert response.status_code == 403
    assert changed_tables(before, fingerprint(db)) == ["api_keys"]


def _owner_only_calls(audience_id: str) -> list[tuple[str, str, dict[str, str]]]:
    form = {"name": "Renamed", "csv": "email\nm@example.com\n", "template": "x", "from": "a@b.co"}
    return [
        ("POST", "/overview/audiences", {"name": "Made by a member"}),
        ("GET", f"/overview/audiences/{audience_id}/drawer/import", {}),
        ("GET", f"/overview/audiences/{audience_id}/drawer/send", {}),
        ("POST", f"/overview/audiences/{audience_id}/import", form),
        ("POST", f"/overview/audiences/{audience_id}/rename", form),
        ("POST", f"/overview/audiences/{audience_id}/send", form),
        ("POST", f"/overview/audiences/{audience_id}/preview", form),
        ("POST", f"/api/internal/audiences/{audience_id}/import-csv", {}),
    ]


@pytest.mark.parametrize("index", range(8))
def test_members_are_refused_owner_actions(client: ApiClient, db: Session, index: int) -> None:
    org = make_org(db)
    audience = make_audience(db, org)
    user = make_user(db, org, "member@example.com", role="member")
    token, row = create_dashboard_session(db, user)
    db.commit()
    client.cookies.set("tidings_session", token)
    method, path, form = _owner_only_calls(audience.id)[index]
    before = fingerprint(db)
    headers = {"X-CSRF-Token": row.csrf_token}
    if path.startswith("/api/internal"):
        response = client.post(
            path, headers={**headers, "Content-Type": "text/csv"}, content=b"email\na@b.co\n"
        )
    elif method == "GET":
        response = client.get(path, headers=headers)
    else:
        response = client.post(path, headers=headers, data={**form, "csrf_token": row.csrf_token})
    assert response.status_code == 403, (path, response.status_code, response.text[:200])
    assert changed_tables(before, fingerprint(db)) == []
