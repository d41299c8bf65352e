"""Alembic environment. The URL comes from the config (tests) or TIDINGS_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from tidings.config import get_settings
from tidings.db import make_engine
from tidings.models import Base, alembic_compares

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url

engine = make_engine(url)
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by rebuilding it, and dropping the old copy with foreign keys on
        # runs every ON DELETE action of the tables that refer to it (0006: all the messages of
        # the rebuilt campaigns). SQLite's own procedure: keys off, before the transaction (the
        # pragma does nothing inside one), checked before committing.
        driver_connection = connection.connection.dbapi_connection
        assert driver_connection is not None  # a connection just checked out of the pool
        driver_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
        include_object=lambda item, *_: alembic_compares(item, connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration left rows with dangling keys: {broken[:10]}")
engine.dispose()
