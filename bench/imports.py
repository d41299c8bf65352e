"""The CSV import, measured two ways.

``run`` is ``make bench``'s figure: the internal HTTP route end to end for 10,000 new rows and for
the same file again, against parsing and validating the same rows with the same libraries plus the
driver's raw bulk write. ``python -m bench.imports`` is the older breakdown below:

For each backend it builds a private, migrated database, then times ``import_csv`` (parse,
validate, upsert, membership, audit, commit) for 10,000 new contacts and for re-importing the same
10,000 rows (every contact matched and updated), and how much the process's peak RSS grew. PostgreSQL is
``TIDINGS_BENCH_POSTGRES_URL`` (default the local server); its scratch database is dropped after.
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bench import env
from bench.env import Backend
from bench.harness import Result, summarise, time_runs
from tidings.auth import Principal
from tidings.contacts.normalize import normalize_email
from tidings.db import make_engine
from tidings.ids import new_id
from tidings.imports.service import ImportResult, import_csv
from tidings.migrations import upgrade
from tidings.models import Audience, Organization

ROWS = 10_000
POSTGRES_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def sample_csv(rows: int = ROWS, suffix: str = "", phones: bool = True) -> bytes:
    """Every row has an email and (by default) a phone: the most validation work per row."""
    lines = ["email,phone,name,company,city" if phones else "email,name,company,city"]
    lines += [
        f"user{i}@example.com,{f'+1415555{i:04d},' if phones else ''}"
        f"User {i}{suffix},Company {i % 97},City {i % 13}"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def _timed(
    factory: sessionmaker[Session], actor: Principal, audience_id: str, data: bytes
) -> dict[str, float | int]:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started, cpu_started = time.perf_counter(), time.process_time()
    with factory() as session:
        result: ImportResult = import_csv(session, actor, audience_id, data)
        session.commit()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    return {
        "seconds": round(seconds, 3),
        # This process's CPU only (not the PostgreSQL server's): steadier on a busy machine.
        "cpu_seconds": round(cpu_seconds, 3),
        "peak_rss_growth_mib": round(rss_growth / 1024, 1),
        "created": result.created,
        "updated": result.updated,
        "added": result.added,
        "invalid": result.invalid,
    }


def measure(url: str) -> dict[str, dict[str, float | int]]:
    upgrade(url)
    engine = make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session:
        org = Organization(id=new_id("org"), name="Bench")
        session.add(org)
        session.flush()
        audience = Audience(id=new_id("aud"), org_id=org.id, name="Bench", slug="bench")
        session.add(audience)
        session.commit()
    actor = Principal(org_id=org.id, actor_type="cli", actor_id=None)
    results = {
        "new_10k": _timed(factory, actor, audience.id, sample_csv()),
        "reimport_10k": _timed(factory, actor, audience.id, sample_csv(suffix=" v2")),
        "reimport_10k_email_only": _timed(
            factory, actor, audience.id, sample_csv(suffix=" v3", phones=False)
        ),
    }
    engine.dispose()
    return results


def _with_postgres(
    run: Callable[[str], dict[str, dict[str, float | int]]],
) -> dict[str, dict[str, float | int]]:
    name = f"tidings_bench_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        return run(url)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as directory:
        report["sqlite"] = measure(f"sqlite:///{Path(directory) / 'bench.db'}")
    try:
        report["postgres"] = _with_postgres(measure)
    except Exception as exc:  # no server: report SQLite alone, say why
        report["postgres"] = {"skipped": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    print(json.dumps(report), file=sys.stdout)


if __name__ == "__main__":
    main()


# --- ``make bench``: the internal route end to end, against parse + validate + raw write ---------

TARGET_NEW_S, TARGET_REIMPORT_S = 0.5, 0.6


def bench_csv(rows: int, tag: str) -> bytes:
    """The issue's file: email, name and three metadata columns."""
    lines = ["email,name,company,city,plan"]
    lines += [
        f"person{i}.{tag}@example{i % 40}.com,Person {i} {tag},Company {i % 97},City {i % 13},"
        f"{'pro' if i % 3 else 'free'}"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def run(backend: Backend, rows: int, repeat: int) -> list[Result]:
    with env.client() as client:
        return _measure(backend, client, rows, repeat)


def _measure(backend: Backend, client: TestClient, rows: int, repeat: int) -> list[Result]:
    org = env.make_org(backend)
    (audience_id,) = env.make_audiences(backend, org, 1, prefix="import")
    (base_org,) = [env.make_org(backend, "Baseline")]
    (base_audience,) = env.make_audiences(backend, base_org, 1, prefix="baseline")
    headers = {"Authorization": f"Bearer {env.INTERNAL_TOKEN}", "Content-Type": "text/csv"}
    files = iter([bench_csv(rows, f"r{i}") for i in range(2 * repeat + 1)])
    current: list[bytes] = []

    def post(expect: str) -> None:
        response = client.post(
            f"/api/internal/audiences/{audience_id}/import-csv", content=current[0], headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()[expect] == rows, response.text

    def next_file() -> None:
        current[:] = [next(files)]

    raw = backend.raw_connection()

    def baseline() -> None:
        _parse_and_write(raw, backend.postgres, base_org.id, base_audience, current[0])

    new, reimport, base = [], [], []
    for i in range(repeat + 1):
        next_file()
        new.append(time_runs(lambda: post("created"), 1, warmup=0)[0])
        reimport.append(time_runs(lambda: post("updated"), 1, warmup=0)[0])
        base.append(time_runs(baseline, 1, warmup=0)[0])
        if i == 0:  # the warm-up round
            new, reimport, base = [], [], []
    raw.close()
    return [
        summarise(
            "import new (HTTP)",
            backend.name,
            rows,
            new,
            base,
            target=f"<= {TARGET_NEW_S} s",
            met=lambda median, _ratio: median <= TARGET_NEW_S * 1000,
        ),
        summarise(
            "re-import same file (HTTP)",
            backend.name,
            rows,
            reimport,
            base,
            target=f"<= {TARGET_REIMPORT_S} s",
            met=lambda median, _ratio: median <= TARGET_REIMPORT_S * 1000,
        ),
    ]


def _parse_and_write(
    connection: Any, postgres: bool, org_id: str, audience_id: str, data: bytes
) -> None:
    """The floor: the same rows read with ``csv`` and checked with ``contacts.normalize``, then
    written as contacts and memberships by the driver alone, and committed."""
    now = datetime.now(UTC)
    stamp: Any = now if postgres else now.strftime("%Y-%m-%d %H:%M:%S.%f")
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = next(reader)
    contacts, members = [], []
    for cells in reader:
        email = normalize_email(cells[0])
        metadata = json.dumps(dict(zip(header[2:], cells[2:], strict=True)))
        contact_id = new_id("con")
        contacts.append((contact_id, org_id, email, None, cells[1], metadata, stamp, stamp))
        members.append((audience_id, contact_id, org_id, stamp))
    contact_columns = "id, org_id, email, phone, name, metadata, created_at, updated_at"
    member_columns = "audience_id, contact_id, org_id, created_at"
    if postgres:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY contacts ({contact_columns}) FROM STDIN") as copy:
                for row in contacts:
                    copy.write_row(row)
            with cursor.copy(f"COPY audience_members ({member_columns}) FROM STDIN") as copy:
                for row in members:
                    copy.write_row(row)
    else:
        connection.executemany(
            f"INSERT INTO contacts ({contact_columns}) VALUES (?,?,?,?,?,?,?,?)", contacts
        )
        connection.executemany(
            f"INSERT INTO audience_members ({member_columns}) VALUES (?,?,?,?)", members
        )
    connection.commit()
