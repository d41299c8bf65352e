"""CSV import over HTTP: formats, upsert rules, row errors, limits. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import ApiClient, make_audience, make_contact, make_org
from tests.imports.helpers import (
    all_contacts,
    contacts_by_email,
    counts,
    member_ids,
    post_csv,
    setup_import,
    stored_count,
)
from tidings.models import AuditEvent, Contact

SIMPLE = "email,name,company\nalice@example.com,Alice,Acme\nbob@example.com,Bob,Widgetco\n"


def test_text_csv_creates_contacts_and_members(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, SIMPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        "received": 2,
        "created": 2,
        "updated": 0,
        "added": 2,
        "invalid": 0,
        "errors": [],
        "contactCount": 2,
    }
    contacts = contacts_by_email(db, setup.org)
    assert contacts["alice@example.com"].name == "Alice"
    assert contacts["bob@example.com"].metadata_ == {"company": "Widgetco"}
    assert member_ids(db, setup.audience) == {c.id for c in contacts.values()}
    assert stored_count(db, setup.audience) == 2


def test_json_body_is_the_same_import(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, json.dumps({"csv": SIMPLE}), content_type="application/json")
    assert response.status_code == 200, response.text
    assert counts(response.json()) == (2, 2, 0, 2, 0)
    assert contacts_by_email(db, setup.org)["alice@example.com"].metadata_ == {"company": "Acme"}


def test_api_v1_prefix_serves_the_same_route(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, SIMPLE, path=f"/api/v1/audiences/{setup.audience.id}/import")
    assert response.status_code == 200
    assert response.json()["created"] == 2


def test_bom_and_crlf(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    body = "\ufeffemail,name\r\nalice@example.com,Alice\r\nbob@example.com,Bob\r\n".encode()
    response = post_csv(client, setup, body, content_type="text/csv; charset=utf-8")
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    contacts = contacts_by_email(db, setup.org)
    assert contacts["bob@example.com"].name == "Bob"  # no stray \r


def test_quoted_commas_and_newlines_keep_row_numbers(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    body = (
        "email,name,address\n"
        'alice@example.com,"Smith, Alice","1 Main St\nSpringfield"\n'
        "not-an-email,Bad,x\n"
    )
    response = post_csv(client, setup, body)
    assert response.status_code == 200, response.text
    body_json = response.json()
    assert counts(body_json) == (2, 1, 0, 1, 1)
    # The quoted newline spans two lines but is one row, so the bad row is row 3.
    assert [(e["row"], e["field"]) for e in body_json["errors"]] == [(3, "email")]
    alice = contacts_by_email(db, setup.org)["alice@example.com"]
    assert alice.name == "Smith, Alice"
    assert alice.metadata_ == {"address": "1 Main St\nSpringfield"}


def test_header_names_match_case_insensitively_after_trimming(
    client: ApiClient, db: Session
) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, " EMAIL ,Name, Plan \nalice@Example.COM,Alice,pro\n")
    assert response.status_code == 200, response.text
    alice = contacts_by_email(db, setup.org)["alice@example.com"]
    assert alice.name == "Alice"
    assert alice.metadata_ == {"Plan": "pro"}


def test_phone_only_file(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, "Phone,name\n+1 415 555 0100,Ann\n+44 20 7946 0958,Ben\n")
    assert response.status_code == 200, response.text
    assert counts(response.json()) == (2, 2, 0, 2, 0)
    phones = {c.phone: c for c in all_contacts(db, setup.org)}
    assert set(phones) == {"+14155550100", "+442079460958"}
    assert phones["+14155550100"].email is None


def test_metadata_columns_land_in_contact_metadata(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    body = "email,city,plan,empty\nalice@example.com,Mumbai,premium,\n"
    assert post_csv(client, setup, body).status_code == 200
    alice = contacts_by_email(db, setup.org)["alice@example.com"]
    # An empty cell sets nothing, so templates fall back to their defaults.
    assert alice.metadata_ == {"city": "Mumbai", "plan": "premium"}


def test_reimport_updates_instead_of_duplicating(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    assert post_csv(client, setup, SIMPLE).status_code == 200
    again = "email,name,company,city\nalice@example.com,,Acme Corp,Pune\nbob@example.com,Robert,,\n"
    response = post_csv(client, setup, again)
    assert response.status_code == 200
    assert counts(response.json()) == (2, 0, 2, 0, 0)
    assert response.json()["contactCount"] == 2
    contacts = contacts_by_email(db, setup.org)
    assert len(contacts) == 2
    # Non-empty cells overwrite, empty cells keep what is there, metadata merges key by key.
    assert contacts["alice@example.com"].name == "Alice"
    assert contacts["alice@example.com"].metadata_ == {"company": "Acme Corp", "city": "Pune"}
    assert contacts["bob@example.com"].name == "Robert"
    assert contacts["bob@example.com"].metadata_ == {"company": "Widgetco"}
    assert stored_count(db, setup.audience) == 2


def test_existing_contacts_match_by_email_then_phone(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    by_phone = make_contact(db, setup.org, phone="+14155550100", metadata={"tier": "gold"})
    member = make_contact(db, setup.org, email="m@example.com")
    audience = make_audience(db, setup.org, name="Existing", members=[member])
    body = "email,phone,tier\nm@example.com,,silver\nnew@example.com,+14155550100,\n"
    response = post_csv(client, setup, body, path=f"/v1/audiences/{audience.id}/import")
    assert response.status_code == 200, response.text
    assert counts(response.json()) == (2, 0, 2, 1, 0)
    assert response.json()["contactCount"] == 2
    db.expire_all()
    phone_contact = db.get(Contact, by_phone.id)
    assert phone_contact is not None
    assert phone_contact.email == "new@example.com"
    assert phone_contact.metadata_ == {"tier": "gold"}
    assert db.scalar(select(func.count()).select_from(Contact)) == 2


def test_email_and_phone_matching_two_contacts_is_a_row_error(
    client: ApiClient, db: Session
) -> None:
    setup = setup_import(db)
    make_contact(db, setup.org, email="a@example.com")
    other = make_contact(db, setup.org, phone="+14155550100")
    body = "email,phone,name\na@example.com,+14155550100,Ann\nb@example.com,,Bea\n"
    response = post_csv(client, setup, body)
    assert response.status_code == 200
    result = response.json()
    assert counts(result) == (2, 1, 0, 1, 1)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(2, "phone")]
    contacts = contacts_by_email(db, setup.org)
    assert contacts["a@example.com"].phone is None
    assert contacts["a@example.com"].name is None
    assert contacts[None].id == other.id


def test_same_address_twice_is_one_contact_and_the_last_row_wins(
    client: ApiClient, db: Session
) -> None:
    """Counts are by row: the row that repeats an address updated the contact an earlier row
    created, so received = created + updated + invalid."""
    setup = setup_import(db)
    body = (
        "email,phone,name\n"
        "alice@example.com,,First\n"
        ",+14155550100,Phone\n"
        "alice@example.com,+14155550100,Last\n"
    )
    response = post_csv(client, setup, body)
    assert response.status_code == 200
    # Row 4 links alice's email to the phone of row 3's contact: that is a conflict (two planned
    # contacts), reported and left out; the two distinct contacts land.
    assert counts(response.json()) == (3, 2, 0, 2, 1)
    body = "email,name\nalice@example.com,First\nALICE@example.com,Other\nalice@EXAMPLE.com,Last\n"
    setup2 = setup_import(db)
    response = post_csv(client, setup2, body)
    assert counts(response.json()) == (3, 2, 1, 2, 0)
    contacts = contacts_by_email(db, setup2.org)
    assert contacts["alice@example.com"].name == "Last"
    assert contacts["ALICE@example.com"].name == "Other"


def test_row_errors_have_spreadsheet_row_numbers_and_good_rows_land(
    client: ApiClient, db: Session
) -> None:
    setup = setup_import(db)
    body = (
        "email,phone,name\n"  # row 1
        "good@example.com,,Good\n"  # row 2
        "\n"  # row 3: blank, skipped silently
        "bad-email,,Bad\n"  # row 4
        ",12,Bad phone\n"  # row 5
        ",,No address\n"  # row 6
        "x@example.com,,X,extra\n"  # row 7: more cells than the header
        "y@example.com,+14155550123,Y\n"  # row 8
    )
    response = post_csv(client, setup, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert counts(result) == (6, 2, 0, 2, 4)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [
        (4, "email"),
        (5, "phone"),
        (6, "email"),
        (7, None),
    ]
    assert all(e["message"] for e in result["errors"])
    assert set(contacts_by_email(db, setup.org)) == {"good@example.com", "y@example.com"}
    assert stored_count(db, setup.audience) == 2


def test_errors_list_is_capped_at_100(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    body = "email\n" + "".join(f"bad{i}\n" for i in range(150)) + "ok@example.com\n"
    response = post_csv(client, setup, body)
    result = response.json()
    assert result["invalid"] == 150
    assert len(result["errors"]) == 100
    assert result["errors"][0]["row"] == 2
    assert result["created"] == 1


def test_ten_thousand_rows_accepted(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    body = "email,n\n" + "".join(f"user{i}@example.com,{i}\n" for i in range(10_000))
    response = post_csv(client, setup, body)
    assert response.status_code == 200, response.text
    assert counts(response.json()) == (10_000, 10_000, 0, 10_000, 0)
    assert response.json()["contactCount"] == 10_000
    assert stored_count(db, setup.audience) == 10_000
    again = post_csv(client, setup, body)
    assert counts(again.json()) == (10_000, 0, 10_000, 0, 0)
    assert stored_count(db, setup.audience) == 10_000


def test_ten_thousand_and_one_rows_refused_and_nothing_written(
    client: ApiClient, db: Session
) -> None:
    setup = setup_import(db)
    body = "email\n" + "".join(f"user{i}@example.com\n" for i in range(10_001))
    response = post_csv(client, setup, body)
    assert response.status_code == 413
    assert "10,000 rows" in response.json()["error"]["message"]
    assert db.scalar(select(func.count()).select_from(Contact)) == 0
    assert stored_count(db, setup.audience) == 0


def test_blank_lines_do_not_count_towards_the_limit(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    body = "email\n" + "".join(f"user{i}@example.com\n\n" for i in range(10_000))
    response = post_csv(client, setup, body)
    assert response.status_code == 200
    assert response.json()["received"] == 10_000


def test_latin1_bytes_are_refused(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, "email,name\nz@example.com,Zoë\n".encode("latin-1"))
    assert response.status_code == 400
    assert "UTF-8" in response.json()["error"]["message"]
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_nul_bytes_are_a_clean_400(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, b"email\na\x00@example.com\n")
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
    escaped = json.dumps({"csv": "email,name\na@example.com,x\u0000y\n"})
    response = post_csv(client, setup, escaped, content_type="application/json")
    assert response.status_code == 400


def test_bad_headers_and_bodies_are_400_naming_the_problem(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    cases = {
        "": "empty",
        "\ufeff\r\n\r\n": "empty",
        "name,company\nAlice,Acme\n": "'email' or 'phone'",
        "email,name,Email\na@example.com,A,b@example.com\n": "twice",
    }
    for body, expected in cases.items():
        response = post_csv(client, setup, body)
        assert response.status_code == 400, body
        assert expected in response.json()["error"]["message"], body
    # A column without a name is no reason to refuse the file; a value in it is one to refuse
    # the row.
    response = post_csv(client, setup, "email,,name\na@example.com,x,A\nb@example.com,,B\n")
    assert response.status_code == 200, response.text
    assert counts(response.json()) == (2, 1, 0, 1, 1)
    assert "column 2 has a value but no name" in response.json()["errors"][0]["message"]
    response = post_csv(client, setup, "{}", content_type="application/json")
    assert response.status_code == 400
    response = post_csv(client, setup, "not json", content_type="application/json")
    assert response.status_code == 400
    response = post_csv(client, setup, '{"csv": ""}', content_type="application/json")
    assert response.status_code == 400
    assert "the CSV is empty" in response.json()["error"]["message"]


def test_header_only_file_imports_nothing(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, "email,name\n")
    assert response.status_code == 200
    assert counts(response.json()) == (0, 0, 0, 0, 0)


def test_other_content_types_are_415(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        response = post_csv(client, setup, SIMPLE, content_type=content_type)
        assert response.status_code == 415, content_type
        assert response.json()["error"]["code"] == "unsupported_media_type"


def test_foreign_or_unknown_audience_is_404(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    foreign = make_audience(db, make_org(db, "Other"))
    for audience_id in (foreign.id, "aud_missing"):
        response = post_csv(client, setup, SIMPLE, path=f"/v1/audiences/{audience_id}/import")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert db.scalar(select(func.count()).select_from(Contact)) == 0


def test_public_route_needs_both_write_scopes(client: ApiClient, db: Session) -> None:
    for scopes in (("write:audiences",), ("write:contacts",), ("read:audiences", "read:contacts")):
        setup = setup_import(db, scopes)
        response = post_csv(client, setup, SIMPLE)
        assert response.status_code == 403, scopes
    setup = setup_import(db)
    response = post_csv(client, setup, SIMPLE, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_idempotency_key_replays_the_first_answer(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    first = post_csv(client, setup, SIMPLE, headers={"Idempotency-Key": "imp-1"})
    second = post_csv(client, setup, SIMPLE, headers={"Idempotency-Key": "imp-1"})
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    events = db.scalars(
        select(AuditEvent).where(AuditEvent.action == "audience.csv_imported")
    ).all()
    assert len(events) == 1
    other = post_csv(
        client, setup, SIMPLE + "c@example.com,C,X\n", headers={"Idempotency-Key": "imp-1"}
    )
    assert other.status_code == 409


def test_audit_event_records_the_counts(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    make_contact(db, setup.org, email="alice@example.com")
    body = SIMPLE + "broken,X,Y\n"
    assert post_csv(client, setup, body).status_code == 200
    event = db.scalars(select(AuditEvent).where(AuditEvent.org_id == setup.org.id)).one()
    assert event.action == "audience.csv_imported"
    assert event.actor_type == "api_key"
    assert event.actor_id is not None and event.actor_id.startswith("key_")
    assert (event.target_type, event.target_id) == ("audience", setup.audience.id)
    assert event.data == {
        "received": 3,
        "created": 1,
        "updated": 1,
        "added": 2,
        "invalid": 1,
        "contactCount": 2,
    }


def test_non_ascii_addresses_and_names_round_trip(client: ApiClient, db: Session) -> None:
    setup = setup_import(db)
    body = "email,name,city\njosé@exämple.com,Zoë Ñúñez,Zürich\n"
    first = post_csv(client, setup, body)
    assert first.status_code == 200, first.text
    again = post_csv(client, setup, body.replace("Zürich", "Genève"))
    assert counts(again.json()) == (1, 0, 1, 0, 0)
    [contact] = all_contacts(db, setup.org)
    assert contact.email == "josé@xn--exmple-cua.com"
    assert contact.name == "Zoë Ñúñez"
    assert contact.metadata_ == {"city": "Genève"}
