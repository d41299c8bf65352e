"""The dashboard in a real browser: log in, see the list, search; members see no drawers."""

from __future__ import annotations

import re
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
    page.set_viewport_size({"width": 390, "height": 844})
    assert row.get_by_role("button", name="Send").is_visible()
    screenshot(page, "audiences-phone", backend)
    page.set_viewport_size({"width": 1280, "height": 860})

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


def _email_template(db: Session, org: Any) -> Any:
    from tidings.ids import new_id
    from tidings.models import Template

    template = Template(
        id=new_id("tpl"),
        org_id=org.id,
        slug="weekly-newsletter",
        name="Weekly newsletter",
        channel="email",
        subject="Hello {{ name }}",
        text="Hi {{ name }} at {{ company }}",
        html="<p>Hi {{ name }}</p>",
    )
    db.add(template)
    db.commit()
    return template


def test_owner_imports_sends_and_watches(
    live_server: str, page: Any, db: Session, backend: str
) -> None:
    org = make_org(db, timezone="Asia/Kolkata")
    make_user(db, org, "owner@example.com")
    make_audience(db, org, "Mumbai Premium")
    _email_template(db, org)
    log_in(page, live_server, "owner@example.com")
    row = page.locator("tr.audience-row", has_text="Mumbai Premium")
    assert row.get_by_test_id("contact-count").inner_text() == "0"

    # Import: paste a CSV, see the counts, the row error and the new contact count in place.
    row.get_by_role("button", name="Import").click()
    page.get_by_label("…or paste CSV").fill(
        "email,name,company\nalice@example.com,Alice,Acme\nbob@example.com,Bob,Widgetco\n"
        "carol@example.com,Carol,Acme\nbroken-address,Dan,X\n"
    )
    page.get_by_role("button", name="Import", exact=True).last.click()
    page.get_by_role("status").filter(has_text="Imported").wait_for()
    assert "3 created" in page.get_by_role("status").filter(has_text="Imported").inner_text()
    assert page.locator("table.errors td", has_text="broken-address").count() == 1
    page.wait_for_function(
        "document.querySelector('[data-testid=contact-count]').innerText === '3'"
    )
    screenshot(page, "import-drawer", backend)

    # Send: two subject variants, a local time in the browser-chosen zone.
    row.get_by_role("button", name="Send").click()
    page.get_by_label("From").fill("hello@acme.example.com")
    page.get_by_label(re.compile(r"^Ramp minutes")).fill("30")
    page.get_by_label("Local date (empty: now)").fill("2031-05-01")
    page.get_by_label("Local time").fill("09:00")
    page.get_by_label("Time zone").select_option("Asia/Kolkata")
    for subject in ("Your weekly update", "Quick update for {{ name }}"):
        page.get_by_role("button", name="Add subject variant").click()
        page.get_by_label("Subject variant").last.fill(subject)
    page.get_by_role("button", name="Add variable").click()
    page.get_by_label("Variable name").fill("company")
    page.get_by_label("Variable value").fill("Request Co")
    page.get_by_role("button", name="Preview for the first member").click()
    page.get_by_test_id("preview").wait_for()
    assert "Request Co" in page.get_by_test_id("preview").inner_text()
    page.get_by_role("button", name="Schedule send").click()
    result = page.get_by_test_id("send-result")
    result.wait_for()
    assert "Scheduled 3 of 3" in result.inner_text()
    assert "starts 2031-05-01 09:00 · ends 2031-05-01 09:30 (Asia/Kolkata)" in result.inner_text()
    screenshot(page, "send-drawer", backend)

    # The campaign view shows per-variant progress and keeps refreshing itself.
    page.get_by_role("link", name="Watch the campaign →").click()
    assert page.get_by_test_id("campaign-status").inner_text() == "scheduled"
    assert page.get_by_test_id("count-scheduled").inner_text() == "3"
    assert page.get_by_test_id("variant-A").count() + page.get_by_test_id("variant-B").count() == 2
    screenshot(page, "campaign", backend)
    assert page.watcher.errors == []


def test_forged_member_post_is_refused(live_server: str, page: Any, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "member@example.com", "member")
    audience = make_audience(db, org, "Mumbai Premium")
    log_in(page, live_server, "member@example.com")
    page.wait_for_url(f"{live_server}/overview/audiences")
    status = page.evaluate(
        """async (url) => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
            const body = new URLSearchParams({csv: 'email\\nx@example.com\\n'});
            const r = await fetch(url, {method: 'POST', body, headers: {'X-CSRF-Token': token}});
            return r.status;
        }""",
        f"{live_server}/overview/audiences/{audience.id}/import",
    )
    assert status == 403


def test_campaign_view_refreshes_while_the_worker_delivers(
    live_server: str, page: Any, db: Session, backend: str
) -> None:
    from tests.delivery.conftest import drain
    from tests.factories import make_campaign

    org = make_org(db)
    make_user(db, org, "owner@example.com")
    members = [make_contact(db, org, email=f"p{i}@example.com", name=f"P{i}") for i in range(4)]
    audience = make_audience(db, org, "Mumbai Premium", members=members)
    campaign, _ = make_campaign(db, org, audience, members, subject_variants=["A1", "B1"])
    log_in(page, live_server, "owner@example.com")
    page.goto(f"{live_server}/overview/campaigns/{campaign.id}")
    assert page.get_by_test_id("count-scheduled").inner_text() == "4"

    drain()  # the real worker, writing to the file outbox
    page.wait_for_function(
        "document.querySelector('[data-testid=count-sent]').innerText === '4'", timeout=15_000
    )
    assert page.get_by_test_id("campaign-status").inner_text() == "completed"
    screenshot(page, "campaign-completed", backend)
    assert page.watcher.errors == []


def test_a_refused_drawer_request_is_said_not_swallowed(
    live_server: str, page: Any, db: Session
) -> None:
    """htmx swaps nothing for a 4xx answer; the page says what the server said instead. Here a
    paste over the form's 1 MB field limit (a file takes more)."""
    org = make_org(db)
    make_user(db, org, "owner@example.com")
    make_audience(db, org, "Big paste")
    log_in(page, live_server, "owner@example.com")
    page.locator("tr.audience-row", has_text="Big paste").get_by_role(
        "button", name="Import"
    ).click()
    rows = "".join(f"person{i}@example.com,{'N' * 100}\n" for i in range(9_000))
    # Set at once: typing 1.1 MB through fill() outlasts its timeout on a slow machine.
    page.get_by_label("…or paste CSV").evaluate(
        "(area, text) => { area.value = text; }", "email,name\n" + rows
    )
    with page.expect_event("dialog") as shown:
        # A click through the DOM: the 1.1 MB textarea keeps the layout from settling soon
        # enough for Playwright's actionability checks on this machine.
        page.get_by_role("button", name="Import", exact=True).last.evaluate("b => b.click()")
    dialog = shown.value
    assert "1024KB" in dialog.message or "exceeded" in dialog.message, dialog.message
    dialog.dismiss()
