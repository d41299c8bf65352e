"""Test harness: every database test runs on SQLite and on PostgreSQL.

The schema is built by running the Alembic migrations once per backend per test session, into a
private database (a temp SQLite file; a ``tidings_test_<random>`` PostgreSQL database, dropped at
the end), so parallel runs never share state. Each test starts from empty tables.

PostgreSQL: ``TIDINGS_TEST_POSTGRES_URL`` (default the local server). Without ``CI=true`` an
unreachable server skips the PostgreSQL half with the reason; with ``CI=true`` it fails loudly.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tests.factories import ApiClient
from tidings.config import get_settings
from tidings.contacts import trigrams
from tidings.db import get_engine, new_session, reset_engine
from tidings.migrations import upgrade
from tidings.models import Base
from tidings.scratch import create_database, drop_database, postgres_unreachable

POSTGRES_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

os.environ.setdefault("TIDINGS_ENVIRONMENT", "test")


@pytest.fixture(scope="session")
def _scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tidings-test-") as directory:
        yield Path(directory)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, _scratch_dir: Path) -> Iterator[str]:
    """A migrated database for this backend, used by every test of the session on that backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{_scratch_dir / 'tidings.db'}"
        cleanup = False
    else:
        reason = postgres_unreachable(POSTGRES_URL)
        if reason is not None:
            message = f"PostgreSQL unreachable at {POSTGRES_URL} ({reason})"
            if IN_CI:
                pytest.fail(f"{message}; CI requires it", pytrace=False)
            pytest.skip(f"{message}; set TIDINGS_TEST_POSTGRES_URL or start the server")
        url, cleanup = create_database(POSTGRES_URL, "tidings_test"), True
    upgrade(url)
    yield url
    reset_engine()
    if cleanup:
        drop_database(POSTGRES_URL, url)


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgres" if database_url.startswith("postgresql") else "sqlite"


def _empty_tables(url: str) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with get_engine().begin() as connection:
        if url.startswith("postgresql"):
            connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def settings_env(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Points the app at this backend's database and a per-test outbox, with clean tables."""
    monkeypatch.setenv("TIDINGS_DATABASE_URL", database_url)
    monkeypatch.setenv("TIDINGS_EMAIL_TRANSPORT", f"file://{tmp_path / 'outbox' / 'email'}")
    monkeypatch.setenv("TIDINGS_SMS_TRANSPORT", f"file://{tmp_path / 'outbox' / 'sms'}")
    monkeypatch.setenv("TIDINGS_INTERNAL_TOKEN", "internal-test-token")
    get_settings.cache_clear()
    if get_engine.cache_info().currsize and str(get_engine().url) != str(make_url(database_url)):
        reset_engine()
    _empty_tables(database_url)
    trigrams.forget_shares()  # the kept statistics describe an earlier test's contacts
    yield
    get_settings.cache_clear()


@pytest.fixture
def db(settings_env: None) -> Iterator[Session]:
    """A session for arranging and checking state; commit after arranging."""
    session = new_session()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def app(settings_env: None) -> Any:
    from tidings.app import create_app

    return create_app()


@pytest.fixture
def client(app: Any) -> Iterator[ApiClient]:
    with ApiClient(app) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(app: Any) -> Iterator[str]:
    """The app on a free loopback port, served by uvicorn in a thread (real sockets)."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
