"""The internal import route: owner sessions (with CSRF) and the internal token, nobody else."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_key, make_org, make_user
from tests.imports.helpers import Setup, contacts_by_email, counts, post_csv, setup_import
from tidings.auth import create_dashboard_session
from tidings.config import get_settings
from tidings.models import AuditEvent, Contact

SIMPLE = "email,name,company\nalice@example.com,Alice,Acme\nbob@example.com,Bob,Widgetco\n"


def _internal_path(setup: Setup) -> str:
    return f"/api/internal/audiences/{setup.audience.id}/import-csv"


def _login(client: ApiClient, db: Session, setup: Setup, role: str) -> tuple[Setup, str]:
    """A dashboard session for a user of ``role``; returns the setup (no API key) and CSRF token."""
    user = make_user(db, setup.org, f"{role}@example.com", role=role)
    token, row = create_dashboard_session(db, user)
    db.commit()
    client.cookies.set("tidings_session", token)
    return Setup(setup.org, setup.audience, {}), row.csrf_token


def test_owner_session_with_csrf_imports(client: ApiClient, db: Session) -> None:
    setup, csrf = _login(client, db, setup_import(db), "owner")
    response = post_csv(
        client, setup, SIMPLE, path=_internal_path(setup), headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 200, response.text
    assert counts(response.json()) == (2, 2, 0, 2, 0)
    event = db.scalars(select(AuditEvent)).one()
    assert (event.actor_type, event.action) == ("user", "audience.csv_imported")
    assert event.actor_id is not None and event.actor_id.startswith("usr_")


def test_owner_session_without_csrf_is_403(client: ApiClient, db: Session) -> None:
    setup, _ = _login(client, db, setup_import(db), "owner")
    response = post_csv(client, setup, SIMPLE, path=_internal_path(setup))
    assert response.status_code == 403
    wrong = post_csv(
        client, setup, SIMPLE, path=_internal_path(setup), headers={"X-CSRF-Token": "nope"}
    )
    assert wrong.status_code == 403
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_member_session_is_403(client: ApiClient, db: Session) -> None:
    setup, csrf = _login(client, db, setup_import(db), "member")
    response = post_csv(
        client, setup, SIMPLE, path=_internal_path(setup), headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 403
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_owner_of_another_org_gets_404(client: ApiClient, db: Session) -> None:
    setup, csrf = _login(client, db, setup_import(db), "owner")
    foreign = make_audience(db, make_org(db, "Other"))
    response = post_csv(
        client,
        setup,
        SIMPLE,
        path=f"/api/internal/audiences/{foreign.id}/import-csv",
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 404


def test_public_api_key_is_403(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, SIMPLE, path=_internal_path(setup))
    assert response.status_code == 403
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_internal_token_imports_in_the_audiences_org(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    token = Setup(setup.org, setup.audience, {"Authorization": "Bearer internal-test-token"})
    response = post_csv(client, token, SIMPLE, path=_internal_path(setup))
    assert response.status_code == 200, response.text
    assert set(contacts_by_email(db, setup.org)) == {"alice@example.com", "bob@example.com"}
    event = db.scalars(select(AuditEvent)).one()
    assert (event.org_id, event.actor_type, event.actor_id) == (setup.org.id, "internal", None)
    missing = post_csv(client, token, SIMPLE, path="/api/internal/audiences/aud_nope/import-csv")
    assert missing.status_code == 404


def test_wrong_token_or_no_credentials_is_401(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    wrong = Setup(setup.org, setup.audience, {"Authorization": "Bearer wrong-token"})
    assert post_csv(client, wrong, SIMPLE, path=_internal_path(setup)).status_code == 401
    anonymous = Setup(setup.org, setup.audience, {})
    assert post_csv(client, anonymous, SIMPLE, path=_internal_path(setup)).status_code == 401


def test_unset_internal_token_turns_the_token_route_off(
    client: ApiClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = setup_import(db)
    monkeypatch.delenv("TIDINGS_INTERNAL_TOKEN")
    get_settings.cache_clear()
    token = Setup(setup.org, setup.audience, {"Authorization": "Bearer internal-test-token"})
    assert post_csv(client, token, SIMPLE, path=_internal_path(setup)).status_code == 401


def test_internal_route_takes_json_and_refuses_other_types(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    token = Setup(setup.org, setup.audience, {"Authorization": "Bearer internal-test-token"})
    response = post_csv(
        client,
        token,
        '{"csv": "email\\nz@example.com\\n"}',
        content_type="application/json",
        path=_internal_path(setup),
    )
    assert response.status_code == 200
    assert response.json()["created"] == 1
    response = post_csv(
        client, token, SIMPLE, content_type="text/plain", path=_internal_path(setup)
    )
    assert response.status_code == 415


def test_key_with_every_scope_still_cannot_use_internal_route(
    client: ApiClient, db: Session
) -> None:
    setup = setup_import(db)
    admin = Setup(setup.org, setup.audience, auth(make_key(db, setup.org)))
    assert post_csv(client, admin, SIMPLE, path=_internal_path(setup)).status_code == 403
