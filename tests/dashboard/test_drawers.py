"""The owner-only drawers over HTTP: import, send, preview, rename, create; members refused."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.dashboard.test_login import login, page_csrf
from tests.factories import ApiClient, make_audience, make_contact, make_org, make_user
from tidings.campaigns.variants import variant_index
from tidings.config import get_settings
from tidings.ids import new_id
from tidings.models import Audience, Campaign, Contact, Message, Template


def _owner_client(client: ApiClient, db: Session) -> tuple[ApiClient, dict[str, str], object]:
    org = make_org(db, timezone="America/New_York")
    make_user(db, org, "owner@example.com")
    login(client, "owner@example.com")
    return client, {"X-CSRF-Token": page_csrf(client), "HX-Request": "true"}, org


def _template(db: Session, org: object, **fields: str) -> Template:
    template = Template(
        id=new_id("tpl"),
        org_id=org.id,
        slug=fields.pop("slug", "news"),  # type: ignore[attr-defined]
        name="News",
        channel="email",
        subject="Hello {{ name }}",
        text="Hi {{ name }} from {{ company }}",
        html=None,
        **fields,
    )
    db.add(template)
    db.commit()
    return template


def test_import_drawer_imports_and_updates_the_count(client: ApiClient, db: Session) -> None:
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Mumbai")
    drawer = client.get(f"/overview/audiences/{audience.id}/drawer/import", headers=headers)
    assert drawer.status_code == 200 and 'name="csv"' in drawer.text
    csv = "email,name,company\nalice@example.com,Alice,Acme\nnot-an-email,Bob,X\n"
    response = client.post(
        f"/overview/audiences/{audience.id}/import", data={"csv": csv}, headers=headers
    )
    assert response.status_code == 200
    assert "1 created" in response.text and "1 invalid" in response.text
    assert f'id="count-{audience.id}"' in response.text and 'hx-swap-oob="true"' in response.text
    assert "<td>3</td>" in response.text  # the bad row, numbered as a spreadsheet shows it
    db.expire_all()
    assert db.get(Audience, audience.id).contact_count == 1  # type: ignore[union-attr]


def test_import_file_upload(client: ApiClient, db: Session) -> None:
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Mumbai")
    files = {"file": ("people.csv", b"\xef\xbb\xbfEmail\r\nzed@example.com\r\n", "text/csv")}
    response = client.post(
        f"/overview/audiences/{audience.id}/import", files=files, headers=headers
    )
    assert response.status_code == 200 and "1 created" in response.text


def test_a_file_and_pasted_text_at_once_are_refused(client: ApiClient, db: Session) -> None:
    """A file left selected from an earlier import must not silently win over new paste."""
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Mumbai")
    files = {"file": ("old.csv", b"email\nold@example.com\n", "text/csv")}
    response = client.post(
        f"/overview/audiences/{audience.id}/import",
        files=files,
        data={"csv": "email\nzed@example.com\n"},
        headers=headers,
    )
    assert response.status_code == 200 and 'role="alert"' in response.text
    assert "not both" in response.text
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_import_error_is_shown_and_nothing_is_written(client: ApiClient, db: Session) -> None:
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Mumbai")
    response = client.post(
        f"/overview/audiences/{audience.id}/import", data={"csv": "name\nAlice\n"}, headers=headers
    )
    assert response.status_code == 200 and 'role="alert"' in response.text
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_send_drawer_schedules_with_two_variants(client: ApiClient, db: Session) -> None:
    client, headers, org = _owner_client(client, db)
    members = [make_contact(db, org, email=f"p{i}@example.com", name=f"P{i}") for i in range(6)]
    audience = make_audience(db, org, "Mumbai", members=members)
    template = _template(db, org)
    drawer = client.get(f"/overview/audiences/{audience.id}/drawer/send", headers=headers)
    assert template.name in drawer.text and "America/New_York" in drawer.text
    form = {
        "channel": "email",
        "template": template.id,
        "from": "hello@acme.example.com",
        "ramp_minutes": "30",
        "scheduled_date": "2031-05-01",
        "scheduled_time": "09:00",
        "scheduled_at_tz": "America/New_York",
        "var_key": ["company"],
        "var_value": ["Acme"],
        "subject_variants": ["A subject", "B subject for {{ name }}"],
    }
    response = client.post(f"/overview/audiences/{audience.id}/send", data=form, headers=headers)
    assert response.status_code == 200, response.text
    assert "Scheduled <strong>6</strong>" in response.text
    assert "starts 2031-05-01 09:00 · ends 2031-05-01 09:30 (America/New_York)" in response.text
    campaign = db.scalars(select(Campaign)).one()
    assert campaign.subject_variants == ["A subject", "B subject for {{ name }}"]
    assert campaign.variables == {"company": "Acme"}
    letters = {m.metadata_["subject_variant"] for m in db.scalars(select(Message))}
    assert letters <= {"A", "B"}

    view = client.get(f"/overview/campaigns/{campaign.id}")
    assert view.status_code == 200 and 'data-testid="count-scheduled">6<' in view.text
    assert 'hx-trigger="every 2s"' in view.text and "Campaign to Mumbai" in view.text

    campaign.audience_id = None  # the audience deleted: the campaign page still tells the story
    db.commit()
    view = client.get(f"/overview/campaigns/{campaign.id}")
    assert view.status_code == 200 and "Campaign to a deleted audience" in view.text


def _send_form(template: Template, **schedule: str) -> dict[str, str]:
    """The send drawer's fields for an email of ``template``, in UTC, with ``schedule``."""
    return {
        "channel": "email",
        "template": template.id,
        "from": "hello@acme.example.com",
        "scheduled_at_tz": "UTC",
        **schedule,
    }


def test_send_errors_are_shown_in_the_drawer(client: ApiClient, db: Session) -> None:
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Mumbai", members=[make_contact(db, org, email="a@x.com")])
    template = _template(db, org)
    past = _send_form(template, scheduled_date="2001-01-01", scheduled_time="09:00")
    response = client.post(f"/overview/audiences/{audience.id}/send", data=past, headers=headers)
    assert response.status_code == 200 and 'role="alert"' in response.text
    assert db.scalar(select(func.count()).select_from(Campaign)) == 0


def test_a_local_time_without_a_date_is_refused_not_sent_now(
    client: ApiClient, db: Session
) -> None:
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Mumbai", members=[make_contact(db, org, email="a@x.com")])
    template = _template(db, org)
    form = _send_form(template, scheduled_time="23:59")
    response = client.post(f"/overview/audiences/{audience.id}/send", data=form, headers=headers)
    assert response.status_code == 200 and 'role="alert"' in response.text
    assert "Choose a date" in response.text
    assert db.scalar(select(func.count()).select_from(Campaign)) == 0


def test_preview_uses_the_first_members_variant(client: ApiClient, db: Session) -> None:
    client, headers, org = _owner_client(client, db)
    members = [
        make_contact(
            db, org, email=f"p{i}@example.com", name=f"P{i}", metadata={"company": "Meta Co"}
        )
        for i in range(3)
    ]
    audience = make_audience(db, org, "Mumbai", members=members)
    template = _template(db, org)
    first = min(members, key=lambda c: c.id)
    variants = ["Alpha {{ name }}", "Beta {{ name }}"]
    expected = variants[variant_index(first.id, 2)].replace("{{ name }}", first.name or "")
    response = client.post(
        f"/overview/audiences/{audience.id}/preview",
        data={"template": template.slug, "subject_variants": variants},
        headers=headers,
    )
    assert response.status_code == 200
    assert expected in response.text and "Meta Co" in response.text


def test_rename_and_create(client: ApiClient, db: Session) -> None:
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Old name")
    renamed = client.post(
        f"/overview/audiences/{audience.id}/rename",
        data={"name": "New name", "description": "d"},
        headers=headers,
    )
    assert renamed.status_code == 200 and "New name" in renamed.text
    created = client.post("/overview/audiences", data={"name": "Fresh list"}, headers=headers)
    assert created.status_code == 200 and "Fresh list" in created.text
    db.expire_all()
    assert {a.name for a in db.scalars(select(Audience))} == {"New name", "Fresh list"}


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "at least 1 character"),
        ("x" * 201, "at most 200 characters"),
        ("a\x00b", "NUL"),
    ],
)
def test_a_name_the_api_refuses_is_refused_in_the_drawer(
    client: ApiClient, db: Session, name: str, message: str
) -> None:
    """The form's own attributes only suggest the limits: the page saved an empty name (a blank
    row, "Send to “”") and one the API refuses."""
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Kept")
    created = client.post("/overview/audiences", data={"name": name}, headers=headers)
    renamed = client.post(
        f"/overview/audiences/{audience.id}/rename", data={"name": name}, headers=headers
    )
    for response in (created, renamed):
        assert response.status_code == 200 and message in response.text
    db.expire_all()
    assert [a.name for a in db.scalars(select(Audience))] == ["Kept"]


def test_going_back_restores_the_whole_page(client: ApiClient, db: Session) -> None:
    """htmx asks for the page again when its history cache has none (Back): the whole page,
    not the table it swaps in; and caches are told the two bodies differ."""
    client, headers, _ = _owner_client(client, db)
    table = client.get("/overview/audiences?page=1", headers=headers)
    restored = client.get(
        "/overview/audiences?page=1",
        headers={**headers, "HX-History-Restore-Request": "true"},
    )
    assert "<html" not in table.text and "<html" in restored.text
    assert "HX-Request" in table.headers["Vary"]


def test_member_is_refused_whatever_the_page_shows(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    make_user(db, org, "member@example.com", "member")
    audience = make_audience(db, org, "Mumbai")
    login(client, "member@example.com")
    headers = {"X-CSRF-Token": page_csrf(client)}
    for path in ("import", "send", "preview", "rename"):
        response = client.post(
            f"/overview/audiences/{audience.id}/{path}",
            data={"csv": "email\na@x.com\n"},
            headers=headers,
        )
        assert response.status_code == 403, path
    assert client.get(f"/overview/audiences/{audience.id}/drawer/import").status_code == 403
    assert (
        client.post("/overview/audiences", data={"name": "x"}, headers=headers).status_code == 403
    )


def test_post_without_csrf_is_refused(client: ApiClient, db: Session) -> None:
    client, _, org = _owner_client(client, db)
    audience = make_audience(db, org, "Mumbai")
    response = client.post(
        f"/overview/audiences/{audience.id}/import", data={"csv": "email\na@x.com\n"}
    )
    assert response.status_code == 403
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_other_orgs_audience_is_404(client: ApiClient, db: Session) -> None:
    client, headers, _ = _owner_client(client, db)
    foreign = make_audience(db, make_org(db, "Other"), "Theirs")
    assert (
        client.get(f"/overview/audiences/{foreign.id}/drawer/send", headers=headers).status_code
        == 404
    )
    assert (
        client.post(
            f"/overview/audiences/{foreign.id}/import",
            data={"csv": "email\na@x.com"},
            headers=headers,
        ).status_code
        == 404
    )


def test_the_sms_sender_is_marked_required_when_the_send_would_need_one(
    client: ApiClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An SMS API without TIDINGS_SMS_FROM refuses a send that names no sender; the drawer says
    so up front instead of calling the field optional."""
    client, headers, org = _owner_client(client, db)
    audience = make_audience(db, org, "Texts")
    url = f"/overview/audiences/{audience.id}/drawer/send?channel=sms"
    assert "(optional)" in client.get(url, headers=headers).text  # a file:// outbox needs none
    monkeypatch.setenv("TIDINGS_SMS_TRANSPORT", "twilio://AC1:token@api.twilio.test")
    get_settings.cache_clear()
    drawer = client.get(url, headers=headers).text
    assert "(required)" in drawer and "(optional)" not in drawer
    monkeypatch.setenv("TIDINGS_SMS_FROM", "+14155550199")
    get_settings.cache_clear()
    assert "(optional)" in client.get(url, headers=headers).text
