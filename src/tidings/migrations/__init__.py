"""Alembic migrations: the only way the schema is made (``tidings db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tidings.config import get_settings
from tidings.db import make_engine

MIGRATIONS_DIR = Path(__file__).parent


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate to ``revision``. A database already at the heads is left alone without starting
    the migration environment, whose checks cost a scan of every SQLite table twice (``env.py``):
    the embedded database is upgraded at the start of every CLI command and of ``serve``."""
    if revision == "head":
        current, heads = pending(url or get_settings().database_url)
        if current == heads:
            return
    command.upgrade(alembic_config(url), revision)


class SchemaFromNewerVersion(Exception):
    """The database is at a revision this version of Tidings does not have: a newer one
    migrated it (a deploy rolled back). Nothing here can upgrade or use it."""

    def __init__(self, unknown: set[str], heads: set[str]) -> None:
        super().__init__(
            f"the database schema is at {', '.join(sorted(unknown))}, which this version of "
            f"Tidings does not know (it knows up to {', '.join(sorted(heads))}): a newer "
            "version migrated it; run that version, or restore a backup taken before it"
        )


def pending(url: str) -> tuple[set[str], set[str]]:
    """``(current, heads)``: the revisions the database is at and those ``upgrade`` would reach;
    equal when the schema is up to date. Raises ``OperationalError`` if the database is down,
    ``SchemaFromNewerVersion`` if a newer Tidings migrated it."""
    scripts = ScriptDirectory.from_config(alembic_config())
    heads = set(scripts.get_heads())
    engine = make_engine(url)  # its connect timeout: a host that drops packets fails in seconds
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    unknown = current - {script.revision for script in scripts.walk_revisions()}
    if unknown:
        raise SchemaFromNewerVersion(unknown, heads)
    return current, heads
