"""Throw-away PostgreSQL databases for the test suite, ``make bench`` and ``make soak``.

Each run works in a database of its own (``<prefix>_<random>``) on a server it is given, so runs
in parallel never share state, and drops it afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def postgres_unreachable(server_url: str) -> str | None:
    """None when the server answers; otherwise the reason, fit to show in a skip or a failure."""
    try:
        engine = create_engine(server_url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect is the reason to report
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def create_database(server_url: str, prefix: str) -> str:
    """Creates ``<prefix>_<random>`` on the server of ``server_url``; returns its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, database_url: str) -> None:
    """Ends the sessions still on the database (a killed worker's, say), then drops it."""
    name = make_url(database_url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    finally:
        admin.dispose()


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    url = create_database(server_url, prefix)
    try:
        yield url
    finally:
        drop_database(server_url, url)
