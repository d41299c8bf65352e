"""Where a benchmark runs: a private, migrated database per backend, the app pointed at it, and the
bulk loaders that build large fixtures without going through HTTP.

PostgreSQL is ``TIDINGS_BENCH_POSTGRES_URL`` (default the local server); each run creates its own
``tidings_bench_<random>`` database and drops it afterwards, so benchmarks never share state with
tests running in parallel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tidings import scratch
from tidings.app import create_app
from tidings.auth import ALL_SCOPES, create_api_key
from tidings.config import get_settings
from tidings.contacts.service import count_contacts
from tidings.db import bulk_insert, make_engine, reset_engine
from tidings.ids import new_id
from tidings.migrations import upgrade
from tidings.models import Audience, AudienceMember, Contact, Organization, Template

POSTGRES_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
INTERNAL_TOKEN = "bench-internal-token"
CONTACT_COLUMNS = ("id", "org_id", "email", "phone", "name", "metadata", "created_at", "updated_at")
MEMBER_COLUMNS = ("audience_id", "contact_id", "org_id", "created_at")


@dataclass
class Backend:
    name: str  # sqlite | postgres
    url: str
    engine: Engine
    outbox: Path

    @property
    def postgres(self) -> bool:
        return self.name == "postgres"

    def session(self) -> Session:
        return sessionmaker(bind=self.engine, expire_on_commit=False)()

    def raw_connection(self) -> Any:
        """A DB-API connection of the driver itself (psycopg 3 or sqlite3), outside SQLAlchemy."""
        if self.postgres:
            import psycopg

            return psycopg.connect(
                make_url(self.url)
                .set(drivername="postgresql")
                .render_as_string(hide_password=False)
            )
        import sqlite3

        connection = sqlite3.connect(make_url(self.url).database or "", timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection


def postgres_unreachable() -> str | None:
    return scratch.postgres_unreachable(POSTGRES_URL)


@contextmanager
def database(name: str) -> Iterator[Backend]:
    """A fresh migrated database on ``name``'s backend, the app's settings pointed at it."""
    with tempfile.TemporaryDirectory(prefix="tidings-bench-") as directory:
        if name == "sqlite":
            url = f"sqlite:///{Path(directory) / 'bench.db'}"
            with _configured(name, url, Path(directory)) as backend:
                yield backend
            return
        with (
            scratch.scratch_database(POSTGRES_URL, "tidings_bench") as url,
            _configured(name, url, Path(directory)) as backend,
        ):
            yield backend


@contextmanager
def _configured(name: str, url: str, directory: Path) -> Iterator[Backend]:
    upgrade(url)
    saved = {k: v for k, v in os.environ.items() if k.startswith("TIDINGS_")}
    outbox = directory / "outbox"
    os.environ.update(
        {
            "TIDINGS_DATABASE_URL": url,
            "TIDINGS_ENVIRONMENT": "test",
            "TIDINGS_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "TIDINGS_EMAIL_TRANSPORT": f"file://{outbox / 'email'}",
            "TIDINGS_SMS_TRANSPORT": f"file://{outbox / 'sms'}",
            "TIDINGS_LOG_LEVEL": "WARNING",
        }
    )
    get_settings.cache_clear()
    reset_engine()
    engine = make_engine(url)
    try:
        yield Backend(name, url, engine, outbox)
    finally:
        engine.dispose()
        reset_engine()
        for key in [k for k in os.environ if k.startswith("TIDINGS_")]:
            del os.environ[key]
        os.environ.update(saved)
        get_settings.cache_clear()


@contextmanager
def client() -> Iterator[TestClient]:
    """The app in this process, started as a server starts it: its lifespan runs (without it the
    app would skip what ``tidings serve`` does at start-up, such as freezing its start-up heap)."""
    with TestClient(create_app()) as test_client:
        yield test_client


@dataclass
class Server:
    base: str  # http://127.0.0.1:<port>
    process: subprocess.Popen[bytes]


@contextmanager
def served() -> Iterator[Server]:
    """A real ``tidings serve`` process on a free port, on the configured database: what a user
    runs, with its HTTP server and event loop, for figures an in-process client would blur."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "tidings"), "serve", "--port", str(port)],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base)
        yield Server(base, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("tidings serve did not answer /healthz within 30 s")


@dataclass
class Org:
    id: str
    key: str  # Authorization header value

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.key}


def make_org(backend: Backend, name: str = "Bench") -> Org:
    with backend.session() as session:
        org = Organization(id=new_id("org"), name=name, timezone="UTC")
        session.add(org)
        session.flush()
        _, secret = create_api_key(session, org.id, frozenset(ALL_SCOPES))
        session.commit()
    return Org(org.id, f"Bearer {secret}")


def make_template(backend: Backend, org: Org, slug: str = "newsletter") -> None:
    with backend.session() as session:
        session.add(
            Template(
                id=new_id("tpl"),
                org_id=org.id,
                slug=slug,
                name="Newsletter",
                channel="email",
                subject="Hello {{ name }}",
                html="<p>Hi {{ name }}, {{ cta }}</p><a href='{{ unsubscribe_url }}'>unsubscribe</a>",
                text="Hi {{ name }}, {{ cta }}\n{{ unsubscribe_url }}",
            )
        )
        session.commit()


def make_audiences(backend: Backend, org: Org, count: int, prefix: str = "bench") -> list[str]:
    """``count`` empty audiences created a second apart (newest first is the listing order)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        (new_id("aud"), org.id, f"{prefix} {i}", f"{prefix}-{i}", None, 0, at, at)
        for i in range(count)
        for at in (start + timedelta(seconds=i),)
    ]
    columns = (
        "id",
        "org_id",
        "name",
        "slug",
        "description",
        "contact_count",
        "created_at",
        "updated_at",
    )
    with backend.session() as session:
        bulk_insert(session, Audience.__table__, columns, rows)  # type: ignore[arg-type]
        session.commit()
    return [row[0] for row in rows]


def contact_row(org_id: str, i: int, at: datetime, tag: str = "") -> tuple[Any, ...]:
    return (
        new_id("con"),
        org_id,
        f"user{i}{tag}@example{i % 50}.com",
        f"+1415{i % 10_000_000:07d}" if i % 2 else None,
        f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]} {i}",
        {"plan": "pro" if i % 3 else "free", "city": CITIES[i % len(CITIES)]},
        at,
        at,
    )


FIRST = ("Asha", "Ben", "Chen", "Dara", "Elif", "Farid", "Gita", "Hugo", "Ines", "Jon")
LAST = ("Patel", "Smith", "Garcia", "Kim", "Okafor", "Novak", "Rossi", "Haddad", "Silva", "Berg")
CITIES = ("Mumbai", "Lagos", "Lima", "Oslo", "Austin", "Seoul", "Cairo")


def load_contacts(
    backend: Backend,
    org: Org,
    n: int,
    audience_ids: Sequence[str] = (),
    tag: str = "",
    batch: int = 100_000,
    member_every: int = 1,
) -> list[str]:
    """``n`` contacts (COPY on PostgreSQL); every ``member_every``-th one a member of each of
    ``audience_ids``, with the maintained counts set. Batches keep memory flat at a million rows."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    ids: list[str] = []
    added = 0
    for first in range(0, n, batch):
        rows = [
            contact_row(org.id, i, start + timedelta(seconds=i), tag)
            for i in range(first, min(n, first + batch))
        ]
        chosen = rows[(-first) % member_every :: member_every]
        added += len(chosen)
        members = [(a, row[0], org.id, row[6]) for a in audience_ids for row in chosen]
        with backend.session() as session:
            bulk_insert(session, Contact.__table__, CONTACT_COLUMNS, rows)  # type: ignore[arg-type]
            bulk_insert(session, AudienceMember.__table__, MEMBER_COLUMNS, members)  # type: ignore[arg-type]
            session.commit()
        ids.extend(row[0] for row in rows)
    with backend.session() as session:
        for audience_id in audience_ids:
            session.execute(
                text("UPDATE audiences SET contact_count = contact_count + :n WHERE id = :id"),
                {"n": added, "id": audience_id},
            )
        count_contacts(session, org.id, len(ids))
        session.commit()
    return ids
