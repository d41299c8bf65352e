"""A quick measurement of the CSV import (not a timed test): ``python -m bench.imports``.

For each backend it builds a private, migrated database, then times ``import_csv`` (parse,
validate, upsert, membership, audit, commit) for 10,000 new contacts and for re-importing the same
10,000 rows (every contact matched and updated), and how much the process's peak RSS grew. PostgreSQL is
``TIDINGS_BENCH_POSTGRES_URL`` (default the local server); its scratch database is dropped after.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tidings.auth import Principal
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
