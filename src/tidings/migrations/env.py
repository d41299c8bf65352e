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
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=lambda item, *_: alembic_compares(item, connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
