"""Alembic environment. The URL comes from the config (tests) or TIDINGS_DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tidings.config import get_settings
from tidings.db import make_engine
from tidings.models import Base, alembic_compares

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url

engine = make_engine(url)


def _dangling_keys(connection: Connection) -> set[tuple[object, ...]]:
    """SQLite's ``(table, rowid, parent table, key)`` of every row whose key names no row."""
    return {tuple(row) for row in connection.exec_driver_sql("PRAGMA foreign_key_check")}


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by rebuilding it, and dropping the old copy with foreign keys on
        # runs every ON DELETE action of the tables that refer to it (0006: all the messages of
        # the rebuilt campaigns). SQLite's own procedure: keys off, before the transaction (the
        # pragma does nothing inside one), the migrations in that one transaction (SQLite's DDL
        # is transactional; Alembic would commit each on its own), checked before committing.
        driver_connection = connection.connection.dbapi_connection
        assert driver_connection is not None  # a connection just checked out of the pool
        driver_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        transactional_ddl=True,
        compare_type=True,
        include_object=lambda item, *_: alembic_compares(item, connection.dialect.name),
    )
    with context.begin_transaction():
        before = _dangling_keys(connection) if sqlite else set()
        context.run_migrations()
        # Only what the migrations left: rows dangling from before (written with keys off, say
        # by the sqlite3 shell) must not stop every later start.
        left = (_dangling_keys(connection) - before) if sqlite else set()
        if left:
            raise RuntimeError(f"the migration left rows with dangling keys: {sorted(left)[:10]}")
engine.dispose()
