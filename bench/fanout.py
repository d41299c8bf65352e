"""Fan-out: ``POST /v1/audiences/:id/send`` to a 10,000-member audience (60-minute ramp, three
subject variants) through the HTTP app, against the physical floor: the same number of message
rows written by the driver alone (psycopg 3 COPY / sqlite3 executemany) on a raw connection.

Every run sends to a new future time, and the messages and campaigns of the previous run are
deleted (untimed) so each run writes into the same, empty ``messages`` table as the baseline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from bench import env
from bench.harness import Result, summarise, time_runs
from tidings.campaigns.schedule import schedule_times
from tidings.campaigns.service import MESSAGE_COLUMNS
from tidings.campaigns.variants import variant_letter
from tidings.ids import new_id

TARGET_RATIO = 2.5


def run(backend: env.Backend, n: int, repeat: int) -> list[Result]:
    with env.client() as client:
        return _measure(backend, client, n, repeat)


def _measure(backend: env.Backend, client: TestClient, n: int, repeat: int) -> list[Result]:
    org = env.make_org(backend)
    env.make_template(backend, org)
    (audience_id,) = env.make_audiences(backend, org, 1, prefix="fanout")
    contact_ids = env.load_contacts(backend, org, n, [audience_id], tag="f")
    counter = iter(range(1_000_000))

    rows, keep = _driver_rows(backend, org.id, sorted(contact_ids))

    def clean() -> None:
        with backend.engine.begin() as connection:
            connection.execute(text("DELETE FROM messages"))
            connection.execute(text("DELETE FROM campaigns WHERE id <> :keep"), {"keep": keep})

    def send() -> None:
        minute = next(counter)
        local = f"2030-01-01 {minute // 60 % 24:02d}:{minute % 60:02d}"
        body = {
            "channel": "email",
            "from": "hello@example.com",
            "template": "newsletter",
            "variables": {"cta": "Read more"},
            "ramp_minutes": 60,
            "subject_variants": ["Update", "Quick update for {{name}}", "News, {{name}}"],
            "scheduled_local": local,
            "scheduled_at_tz": "America/New_York",
        }
        response = client.post(f"/v1/audiences/{audience_id}/send", json=body, headers=org.headers)
        assert response.status_code in (200, 201), response.text
        assert response.json()["scheduled"] == n, response.text

    raw = backend.raw_connection()

    def baseline() -> None:
        _raw_write(raw, backend.postgres, rows)

    # Interleaved, so that noise from other jobs on the machine hits both alike.
    samples = time_runs(send, repeat, warmup=1, setup=clean)
    base = time_runs(baseline, repeat, warmup=1, setup=clean)
    samples += time_runs(send, repeat, warmup=0, setup=clean)
    base += time_runs(baseline, repeat, warmup=0, setup=clean)
    clean()
    raw.close()
    return [
        summarise(
            "fanout send (HTTP)",
            backend.name,
            n,
            samples,
            base,
            target=f"<= {TARGET_RATIO}x raw",
            met=lambda _median, ratio: ratio is not None and ratio <= TARGET_RATIO,
        )
    ]


def _driver_rows(
    backend: env.Backend, org_id: str, contact_ids: list[str]
) -> tuple[list[tuple[Any, ...]], str]:
    """The send's rows, already in the driver's own types (the campaign row is written first)."""
    campaign_id = new_id("cmp")
    now = datetime.now(UTC)
    starts = now + timedelta(days=1)
    with backend.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO campaigns (id, org_id, audience_id, channel, status, variables, "
                "ramp_minutes, starts_at, ends_at, total, scheduled, suppressed, skipped, "
                "created_at, updated_at) SELECT :id, org_id, id, 'email', 'scheduled', '{}', 60, "
                ":s, :s, 0, 0, 0, 0, :s, :s FROM audiences WHERE org_id = :org LIMIT 1"
            ),
            {"id": campaign_id, "org": org_id, "s": starts},
        )
    times = schedule_times(starts, 60, len(contact_ids))

    def stamp(value: datetime) -> Any:
        if backend.postgres:
            return value
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    now_value = stamp(now)
    rows = [
        (
            new_id("msg"),
            org_id,
            campaign_id,
            contact_id,
            "email",
            f"{contact_id}@example.com",
            "scheduled",
            stamp(at),
            json.dumps({"subject_variant": variant_letter(contact_id, 3)}),
            0,
            now_value,
            now_value,
        )
        for contact_id, at in zip(contact_ids, times, strict=True)
    ]
    return rows, campaign_id


def _raw_write(connection: Any, postgres: bool, rows: list[tuple[Any, ...]]) -> None:
    """The floor: the driver's bulk write of the prepared rows, and the commit."""
    columns = ", ".join(MESSAGE_COLUMNS)
    if postgres:
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY messages ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" for _ in MESSAGE_COLUMNS)
        connection.executemany(f"INSERT INTO messages ({columns}) VALUES ({marks})", rows)
    connection.commit()
