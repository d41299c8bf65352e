"""GET /v1/audit-events: scoped to the caller's org, newest first, filtered, paginated."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from tests.factories import ApiClient, auth, make_audience, make_key, make_org
from tidings.ids import new_id
from tidings.models import AuditEvent, Organization
from tidings.timeutil import utcnow


def _event(
    db: Session,
    org: Organization,
    action: str,
    target_id: str,
    minutes_ago: int,
    target_type: str = "audience",
) -> AuditEvent:
    event = AuditEvent(
        id=new_id("evt"),
        org_id=org.id,
        actor_type="api_key",
        actor_id="key_x",
        action=action,
        target_type=target_type,
        target_id=target_id,
        data={"n": minutes_ago},
        created_at=utcnow() - timedelta(minutes=minutes_ago),
    )
    db.add(event)
    db.commit()
    return event


def _arrange(db: Session) -> tuple[Organization, dict[str, str]]:
    org = make_org(db)
    _event(db, org, "audience.created", "aud_1", 30)
    _event(db, org, "audience.csv_imported", "aud_1", 20)
    _event(db, org, "audience.csv_imported", "aud_2", 10)
    _event(db, org, "template.created", "tpl_1", 5, target_type="template")
    _event(db, make_org(db, "Other"), "audience.csv_imported", "aud_9", 1)
    return org, auth(make_key(db, org, ("read:audit",)))


def test_lists_own_events_newest_first_in_camel_case(client: ApiClient, db: Session) -> None:
    org, headers = _arrange(db)
    response = client.get("/v1/audit-events", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["total"], body["page"], body["limit"], body["totalPages"]) == (4, 1, 20, 1)
    assert [e["data"]["n"] for e in body["data"]] == [5, 10, 20, 30]
    first = body["data"][0]
    assert set(first) == {
        "id",
        "organizationId",
        "actorType",
        "actorId",
        "action",
        "targetType",
        "targetId",
        "data",
        "createdAt",
    }
    assert first["organizationId"] == org.id
    assert first["id"].startswith("evt_")
    assert first["createdAt"].endswith("Z") and len(first["createdAt"]) == 24


def test_filters_by_action_target_id_and_target_type(client: ApiClient, db: Session) -> None:
    _, headers = _arrange(db)

    def ns(**params: str) -> list[int]:
        response = client.get("/v1/audit-events", params=params, headers=headers)
        assert response.status_code == 200
        return [e["data"]["n"] for e in response.json()["data"]]

    assert ns(action="audience.csv_imported") == [10, 20]
    assert ns(targetId="aud_1") == [20, 30]
    assert ns(action="audience.csv_imported", targetId="aud_1") == [20]
    assert ns(targetType="template") == [5]
    assert ns(targetId="aud_9") == []  # another org's event is invisible
    # As the other lists read filters: snake_case too, and an empty value filters by nothing.
    assert ns(target_type="template") == [5] and ns(target_id="aud_1") == [20, 30]
    assert ns(action="") == ns(targetId="") == ns(target_type="") == ns()
    assert len(ns()) == 4
    clash = client.get("/v1/audit-events?targetId=aud_1&target_id=aud_2", headers=headers)
    assert clash.status_code == 400 and "give one of them" in clash.text


def test_pagination(client: ApiClient, db: Session) -> None:
    _, headers = _arrange(db)
    response = client.get("/v1/audit-events?page=2&limit=3", headers=headers)
    body = response.json()
    assert (body["total"], body["page"], body["limit"], body["totalPages"]) == (4, 2, 3, 2)
    assert [e["data"]["n"] for e in body["data"]] == [30]
    for bad in ("page=0", "limit=0", "limit=101", "page=x"):
        assert client.get(f"/v1/audit-events?{bad}", headers=headers).status_code == 400


def test_needs_read_audit_scope(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    no_audit = auth(make_key(db, org, ("read:audiences", "write:audiences")))
    response = client.get("/v1/audit-events", headers=no_audit)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/audit-events").status_code == 401
    assert client.get("/api/v1/audit-events", headers=no_audit).status_code == 403


def test_import_event_is_listed(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    audience = make_audience(db, org)
    headers = auth(make_key(db, org, ("write:audiences", "write:contacts", "read:audit")))
    imported = client.post(
        f"/api/v1/audiences/{audience.id}/import",
        content=b"email\na@example.com\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200
    response = client.get(
        "/v1/audit-events",
        params={"action": "audience.csv_imported", "targetId": audience.id},
        headers=headers,
    )
    [event] = response.json()["data"]
    assert event["actorType"] == "api_key"
    assert event["targetType"] == "audience"
    assert event["data"] == {
        "received": 1,
        "created": 1,
        "updated": 0,
        "added": 1,
        "invalid": 0,
        "contactCount": 1,
    }
