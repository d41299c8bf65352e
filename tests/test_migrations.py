"""The migrations are the schema: one head, and they build exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tidings.db import get_engine
from tidings.migrations import alembic_config
from tidings.models import Base, built_on


def test_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"


def test_migrations_match_models(settings_env: None) -> None:
    with get_engine().connect() as connection:
        dialect = connection.dialect.name
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": False,
                # PostgreSQL-only indexes (``ddl_if``) are not expected on SQLite.
                "include_object": lambda item, *_: built_on(item, dialect),
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
