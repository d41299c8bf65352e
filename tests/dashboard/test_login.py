"""Login, logout, sessions and CSRF over plain HTTP (the browser tests drive the same pages)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.factories import ApiClient, make_audience, make_org, make_user
from tidings.errors import Conflict
from tidings.models import DashboardSession, LoginThrottle, User
from tidings.orgs import create_user
from tidings.timeutil import utcnow

PASSWORD = "correct horse battery"


def _login_csrf(client: ApiClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def login(client: ApiClient, email: str, password: str = PASSWORD) -> ApiClient:
    csrf = _login_csrf(client)
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return client


def page_csrf(client: ApiClient) -> str:
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/overview/audiences").text)
    assert match
    return match.group(1)


def test_login_sets_a_safe_session_cookie(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "Owner@Example.com", "owner", PASSWORD)
    csrf = _login_csrf(client)
    response = client.post(
        "/login",
        data={"email": "Owner@example.com", "password": PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/overview/audiences"
    cookie = response.headers["set-cookie"]
    assert "tidings_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert db.scalar(select(DashboardSession.user_id)) is not None


def test_wrong_password_is_a_clear_message(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    csrf = _login_csrf(client)
    response = client.post(
        "/login", data={"email": "owner@example.com", "password": "nope-nope", "csrf_token": csrf}
    )
    # A normal page (not a 4xx) so the browser shows the form again without a console error.
    assert response.status_code == 200
    assert "Wrong email or password." in response.text
    assert "tidings_session" not in response.headers.get("set-cookie", "")


def _attempts(client: ApiClient, email: str, password: str, times: int) -> list[int]:
    statuses = []
    for _ in range(times):
        data = {"email": email, "password": password, "csrf_token": _login_csrf(client)}
        statuses.append(client.post("/login", data=data).status_code)
    return statuses


def test_repeated_failures_are_slowed_down(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    assert _attempts(client, "owner@example.com", "wrong-guess", 5) == [200, 200, 200, 200, 429]
    # Even the right password waits out the lock.
    csrf = _login_csrf(client)
    response = client.post(
        "/login", data={"email": "owner@example.com", "password": PASSWORD, "csrf_token": csrf}
    )
    assert response.status_code == 429 and "Try again in" in response.text
    db.expire_all()
    assert db.scalars(select(LoginThrottle.locked_until)).one() is not None


def test_the_throttle_does_not_tell_which_emails_have_accounts(
    client: ApiClient, db: Session
) -> None:
    """An email without an account is locked after as many failures, with the same answers."""
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    known = _attempts(client, "owner@example.com", "wrong-guess", 6)
    unknown = _attempts(client, "nobody@example.com", "wrong-guess", 6)
    assert known == unknown == [200, 200, 200, 200, 429, 429]


def test_a_successful_login_clears_its_failures(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    assert _attempts(client, "owner@example.com", "wrong-guess", 3) == [200, 200, 200]
    login(client, "owner@example.com")
    db.expire_all()
    assert db.scalars(select(LoginThrottle)).all() == []
    assert _attempts(client, "owner@example.com", "wrong-guess", 4) == [200, 200, 200, 200]


def test_an_email_in_another_case_is_the_same_user(client: ApiClient, db: Session) -> None:
    """``Owner@`` and ``owner@`` are one mailbox: one user, who may type either; its failed
    attempts count together."""
    org = make_org(db)
    make_user(db, org, "Priya.Shah@example.com")
    login(client, "priya.shah@EXAMPLE.com")
    client.cookies.clear()
    assert _attempts(client, "PRIYA.SHAH@example.com", "wrong-guess", 2) == [200, 200]
    assert _attempts(client, "priya.shah@example.com", "wrong-guess", 3) == [200, 200, 429]
    with pytest.raises(Conflict, match="exists already"):
        create_user(db, org.id, "PRIYA.shah@example.com", "member", PASSWORD)
    # Letters PostgreSQL's lower() folds otherwise than Python's: folded by one of them.
    for email in ("ΝΙΚΟΣ@example.gr", "İnci@example.com"):
        make_user(db, org, email)
        client.cookies.clear()
        login(client, email)
        with pytest.raises(Conflict, match="exists already"):
            create_user(db, org.id, email, "member", PASSWORD)


def test_login_without_csrf_is_refused(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    client.get("/login")
    response = client.post("/login", data={"email": "owner@example.com", "password": PASSWORD})
    assert response.status_code == 403


def test_pages_require_login(client: ApiClient) -> None:
    response = client.get("/overview/audiences", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_list_shows_the_orgs_audiences_only(client: ApiClient, db: Session) -> None:
    org, other = make_org(db), make_org(db, "Other")
    make_user(db, org, "owner@example.com")
    make_audience(db, org, "Mumbai Premium")
    make_audience(db, other, "Secret Other Audience")
    login(client, "owner@example.com")
    page = client.get("/overview/audiences")
    assert "Mumbai Premium" in page.text
    assert "Secret Other Audience" not in page.text
    assert 'hx-get="/overview/audiences/' in page.text  # owners get drawers


def test_members_get_no_drawers(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "member@example.com", "member")
    make_audience(db, org, "Mumbai Premium")
    login(client, "member@example.com")
    page = client.get("/overview/audiences")
    assert "Mumbai Premium" in page.text
    assert "/drawer/" not in page.text
    assert "New audience" not in page.text  # creating is for owners: no form to be refused


def test_search_and_pagination(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    for i in range(25):
        make_audience(db, org, f"List {i:02d}")
    make_audience(db, org, "Needle")
    login(client, "owner@example.com")
    first = client.get("/overview/audiences")
    assert "page 1 of 2" in first.text
    assert "Needle" in client.get("/overview/audiences?search=needl").text
    assert "List 00" not in client.get("/overview/audiences?search=needl").text
    assert "New audience" in first.text
    # LIKE wildcards are the text they are, as in the API's search.
    for wildcard in ("%25", "_", "%5C"):
        assert "page 1 of 1" in client.get(f"/overview/audiences?search={wildcard}").text
        assert "Needle" not in client.get(f"/overview/audiences?search={wildcard}").text
    make_audience(db, org, "50% off")
    assert "50% off" in client.get("/overview/audiences?search=50%25").text


def test_logout_needs_csrf_and_ends_the_session(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    login(client, "owner@example.com")
    assert client.post("/logout", follow_redirects=False).status_code == 403
    csrf = page_csrf(client)
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert db.scalar(select(DashboardSession.user_id)) is None


def test_get_logout_asks_to_confirm_with_the_form(client: ApiClient, db: Session) -> None:
    """DESIGN §1 lists /logout: a link there offers the button; it does not log out by itself."""
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    login(client, "owner@example.com")
    page = client.get("/logout")
    assert page.status_code == 200
    assert 'action="/logout"' in page.text and "owner@example.com" in page.text
    assert db.scalar(select(DashboardSession.user_id)) is not None
    csrf = page_csrf(client)
    client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    gone = client.get("/logout", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login"


def test_a_login_clears_the_users_expired_sessions(client: ApiClient, db: Session) -> None:
    """A session never logged out of ends by expiring; its row goes at the user's next login,
    and other users' sessions, expired or not, stay."""
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    make_user(db, org, "other@example.com")
    login(ApiClient(client.app), "owner@example.com")
    login(ApiClient(client.app), "other@example.com")
    db.execute(update(DashboardSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.commit()
    login(client, "owner@example.com")
    assert client.get("/overview/audiences").status_code == 200
    users = db.scalars(select(User.email).join(DashboardSession)).all()
    assert sorted(users) == ["other@example.com", "owner@example.com"]
    live = db.scalar(
        select(func.count())
        .select_from(DashboardSession)
        .where(DashboardSession.expires_at > utcnow())
    )
    assert live == 1


def test_the_login_page_shows_no_text_from_its_address(client: ApiClient) -> None:
    """Only a failed submission puts an error on the page; a link cannot write one there."""
    page = client.get("/login", params={"error": "Session expired. Call +1-555-0100"})
    assert page.status_code == 200 and "555-0100" not in page.text
