"""The dashboard in a real browser: log in, see the list, search; members see no drawers."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.dashboard.conftest import screenshot
from tests.factories import make_audience, make_contact, make_org, make_user

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"


def log_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_owner_logs_in_and_sees_audiences(
    live_server: str, page: Any, db: Session, backend: str
) -> None:
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    alice = make_contact(db, org, email="alice@example.com", name="Alice")
    make_audience(db, org, "Mumbai Premium", members=[alice])
    make_audience(db, org, "London Basic")

    page.goto(f"{live_server}/login")
    screenshot(page, "login", backend)
    log_in(page, live_server, "owner@example.com", "wrong-password")
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."

    log_in(page, live_server, "owner@example.com")
    page.wait_for_url(f"{live_server}/overview/audiences")
    row = page.locator("tr.audience-row", has_text="Mumbai Premium")
    assert row.get_by_test_id("contact-count").inner_text() == "1"
    assert row.get_by_role("button", name="Import").is_visible()
    screenshot(page, "audiences", backend)

    page.get_by_label("Search audiences").fill("london")
    page.wait_for_function("!document.body.innerText.includes('Mumbai Premium')")
    assert page.locator("tr.audience-row").count() == 1
    assert page.watcher.errors == []


def test_member_sees_no_drawers(live_server: str, page: Any, db: Session, backend: str) -> None:
    org = make_org(db)
    make_user(db, org, "member@example.com", "member")
    make_audience(db, org, "Mumbai Premium")
    log_in(page, live_server, "member@example.com")
    page.wait_for_url(f"{live_server}/overview/audiences")
    assert page.locator("tr.audience-row").count() == 1
    assert page.get_by_role("button", name="Import").count() == 0
    assert page.get_by_role("button", name="Send").count() == 0
    screenshot(page, "audiences-member", backend)
    assert page.watcher.errors == []
