"""The migrations are the schema: one head, and they build exactly what the models describe."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from tests.conftest import POSTGRES_URL
from tidings import migrations
from tidings.db import get_engine, make_engine
from tidings.migrations import alembic_config, upgrade
from tidings.models import SEARCH_INDEX, Base, alembic_compares
from tidings.scratch import create_database, drop_database


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
                # Not PostgreSQL-only indexes on SQLite, nor expression indexes (see the function).
                "include_object": lambda item, *_: alembic_compares(item, dialect),
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


@pytest.fixture
def scratch(backend: str, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """An empty database of its own on this test's backend, to upgrade step by step."""
    if backend == "sqlite":
        url, server = f"sqlite:///{tmp_path / 'upgrade.db'}", None
    else:
        server = POSTGRES_URL
        url = create_database(server, "tidings_migration")
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        if server is not None:
            drop_database(server, url)


def test_0003_keeps_memberships_and_binds_each_to_its_audience_organization(
    scratch: tuple[str, Engine],
) -> None:
    """Upgrading a database that holds memberships keeps them (SQLite rebuilds the table), and one
    naming another organization than its audience's stops the upgrade before anything changes;
    after it, such a membership is refused, and deleting an organization still removes its
    memberships."""
    url, engine = scratch
    upgrade(url, "0002")
    now = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        for org in ("org_a", "org_b"):
            connection.execute(
                text(
                    "INSERT INTO organizations (id, name, timezone, created_at, updated_at) "
                    "VALUES (:id, :id, 'UTC', :t, :t)"
                ),
                {"id": org, "t": now},
            )
        connection.execute(
            text(
                "INSERT INTO audiences (id, org_id, name, slug, contact_count, created_at, "
                "updated_at) VALUES ('aud_a', 'org_a', 'A', 'a', 1, :t, :t)"
            ),
            {"t": now},
        )
        for contact, org in (("con_a", "org_a"), ("con_b", "org_b")):
            connection.execute(
                text(
                    "INSERT INTO contacts (id, org_id, email, metadata, created_at, "
                    "updated_at) VALUES (:id, :org, :email, '{}', :t, :t)"
                ),
                {"id": contact, "org": org, "email": f"{contact}@example.com", "t": now},
            )
        connection.execute(_MEMBER, {"contact": "con_a", "org": "org_a", "t": now})
        # What only a bug could have written: a membership of org_a's audience in org_b.
        connection.execute(_MEMBER, {"contact": "con_b", "org": "org_b", "t": now})

    with pytest.raises(RuntimeError, match="1 audience memberships name another organization"):
        upgrade(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audience_members WHERE contact_id = 'con_b'"))
    upgrade(url)

    with engine.connect() as connection:
        members = connection.execute(text("SELECT contact_id FROM audience_members")).all()
        assert [tuple(row) for row in members] == [("con_a",)]
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(_MEMBER, {"contact": "con_b", "org": "org_b", "t": now})
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM organizations WHERE id = 'org_a'"))
        assert connection.execute(text("SELECT count(*) FROM audience_members")).scalar() == 0
    command.downgrade(alembic_config(url), "0002")
    upgrade(url)


_MEMBER = text(
    "INSERT INTO audience_members (audience_id, contact_id, org_id, created_at) "
    "VALUES ('aud_a', :contact, :org, :t)"
)


@pytest.fixture
def postgres_scratch(backend: str) -> Iterator[tuple[str, Engine]]:
    """An empty database of its own, for migrations that change nothing on SQLite."""
    if backend == "sqlite":
        pytest.skip("this migration changes PostgreSQL only")
    url = create_database(POSTGRES_URL, "tidings_migration")
    engine = make_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        drop_database(POSTGRES_URL, url)


def test_0004_replaces_the_three_search_indexes_with_one_and_back(
    postgres_scratch: tuple[str, Engine],
) -> None:
    """PostgreSQL only (SQLite has no trigram index): the upgrade leaves one search index, with
    no statistics kept on it; the downgrade restores the three per-column ones."""
    url, engine = postgres_scratch
    indexes = text(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'contacts' AND indexdef LIKE '%gin%'"
        " ORDER BY indexname"
    )
    upgrade(url, "0003")
    with engine.connect() as connection:
        assert list(connection.scalars(indexes)) == [
            "ix_contacts_email_trgm",
            "ix_contacts_name_trgm",
            "ix_contacts_phone_trgm",
        ]
    upgrade(url)
    with engine.connect() as connection:
        assert list(connection.scalars(indexes)) == [SEARCH_INDEX]
        statistics = text(
            "SELECT attstattarget FROM pg_attribute "
            "WHERE attrelid = CAST(:index AS regclass) AND attnum = 1"
        )
        assert connection.scalar(statistics, {"index": SEARCH_INDEX}) == 0
    command.downgrade(alembic_config(url), "0003")
    with engine.connect() as connection:
        assert len(list(connection.scalars(indexes))) == 3


def test_0005_keeps_one_contact_per_address_without_indexing_absent_ones(
    postgres_scratch: tuple[str, Engine],
) -> None:
    """PostgreSQL only (SQLite keeps its constraints): after the upgrade an address is still
    unique per organization and contacts without one coexist, but only contacts that have the
    address are in its index; the downgrade restores the constraints."""
    url, engine = postgres_scratch
    definitions = text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'contacts' "
        "AND indexname LIKE 'uq_contacts_org_id_%' ORDER BY indexname"
    )
    insert = text(
        "INSERT INTO contacts (id, org_id, email, phone, metadata, created_at, updated_at) "
        "VALUES (:id, 'org_a', :email, :phone, '{}', now(), now())"
    )
    upgrade(url)
    with engine.connect() as connection:
        found = dict(connection.execute(definitions).tuples().all())
    assert set(found) == {
        "uq_contacts_org_id_email_not_null",
        "uq_contacts_org_id_phone_not_null",
    }
    assert "WHERE (email IS NOT NULL)" in found["uq_contacts_org_id_email_not_null"]
    assert "WHERE (phone IS NOT NULL)" in found["uq_contacts_org_id_phone_not_null"]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO organizations (id, name, timezone, created_at, updated_at) "
                "VALUES ('org_a', 'A', 'UTC', now(), now())"
            )
        )
        connection.execute(insert, {"id": "con_1", "email": "a@example.com", "phone": None})
        connection.execute(insert, {"id": "con_2", "email": "b@example.com", "phone": None})
        connection.execute(insert, {"id": "con_3", "email": None, "phone": "+14155550100"})
    for clash in (
        {"email": "a@example.com", "phone": None},
        {"email": None, "phone": "+14155550100"},
    ):
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert, {"id": "con_4", **clash})
    command.downgrade(alembic_config(url), "0004")
    with engine.connect() as connection:
        assert set(dict(connection.execute(definitions).tuples().all())) == {
            "uq_contacts_org_id_email",
            "uq_contacts_org_id_phone",
        }


_ORG = text(
    "INSERT INTO organizations (id, name, timezone, created_at, updated_at) "
    "VALUES ('org_a', 'A', 'UTC', :t, :t)"
)
_AUDIENCE = text(
    "INSERT INTO audiences (id, org_id, name, slug, contact_count, created_at, updated_at) "
    "VALUES ('aud_a', 'org_a', 'A', 'a', 0, :t, :t)"
)
_CAMPAIGN = text(
    "INSERT INTO campaigns (id, org_id, audience_id, channel, status, variables, ramp_minutes, "
    "starts_at, ends_at, total, scheduled, suppressed, skipped, created_at, updated_at) "
    "VALUES ('cmp_a', 'org_a', 'aud_a', 'email', 'completed', '{}', 0, :t, :t, 2, 2, 0, 0, :t, :t)"
)
_MESSAGE = text(
    "INSERT INTO messages (id, org_id, campaign_id, contact_id, channel, to_address, status, "
    "scheduled_at, metadata, attempt, created_at, updated_at) VALUES (:id, 'org_a', 'cmp_a', "
    ":id, 'email', 'x@example.com', 'sent', :t, '{\"subject_variant\": \"A\"}', 1, :t, :t)"
)


def test_0006_keeps_every_message_and_lets_campaigns_outlive_their_audience(
    scratch: tuple[str, Engine],
) -> None:
    """SQLite rebuilds ``campaigns``, which ``messages`` refers to with ON DELETE CASCADE: with
    foreign keys on, dropping the old copy would have deleted every message. After the upgrade,
    deleting the audience leaves its campaign (audience null) and the messages."""
    url, engine = scratch

    def count(table: str) -> int:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

    upgrade(url, "0005")
    now = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        for statement in (_ORG, _AUDIENCE, _CAMPAIGN):
            connection.execute(statement, {"t": now})
        for message in ("msg_1", "msg_2"):
            connection.execute(_MESSAGE, {"id": message, "t": now})
    upgrade(url)
    assert (count("campaigns"), count("messages")) == (1, 2)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audiences WHERE id = 'aud_a'"))
        kept = connection.execute(text("SELECT audience_id FROM campaigns")).scalar_one()
    assert kept is None
    assert (count("campaigns"), count("messages")) == (1, 2)
    command.downgrade(alembic_config(url), "0005")  # the old key: such campaigns go
    assert (count("campaigns"), count("messages")) == (0, 0)
    upgrade(url)


def test_0007_counts_each_organization_contacts_once(scratch: tuple[str, Engine]) -> None:
    url, engine = scratch
    upgrade(url, "0006")
    now = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        connection.execute(_ORG, {"t": now})
        connection.execute(
            text(
                "INSERT INTO organizations (id, name, timezone, created_at, updated_at) "
                "VALUES ('org_empty', 'E', 'UTC', :t, :t)"
            ),
            {"t": now},
        )
        for i in range(3):
            connection.execute(
                text(
                    "INSERT INTO contacts (id, org_id, email, metadata, created_at, "
                    "updated_at) VALUES (:id, 'org_a', :email, '{}', :t, :t)"
                ),
                {"id": f"con_{i}", "email": f"c{i}@example.com", "t": now},
            )
    upgrade(url)
    with engine.connect() as connection:
        counts = connection.execute(
            text("SELECT id, contact_count FROM organizations ORDER BY id")
        ).all()
    assert [tuple(row) for row in counts] == [("org_a", 3), ("org_empty", 0)]
    command.downgrade(alembic_config(url), "0006")
    upgrade(url)


def test_0008_moves_login_failures_off_the_users_and_keeps_them(
    scratch: tuple[str, Engine],
) -> None:
    url, engine = scratch
    upgrade(url, "0007")
    now = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        connection.execute(_ORG, {"t": now})
        connection.execute(
            text(
                "INSERT INTO users (id, org_id, email, password_hash, role, failed_logins, "
                "created_at, updated_at) VALUES ('usr_a', 'org_a', 'a@example.com', 'h', "
                "'owner', 2, :t, :t)"
            ),
            {"t": now},
        )
    upgrade(url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT email FROM users")).scalar_one() == "a@example.com"
        assert connection.execute(text("SELECT count(*) FROM login_throttles")).scalar_one() == 0
    command.downgrade(alembic_config(url), "0007")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT failed_logins FROM users")).scalar_one() == 0
    upgrade(url)


def test_0009_composes_the_names_stored_before(scratch: tuple[str, Engine]) -> None:
    url, engine = scratch
    upgrade(url, "0008")
    now = "2026-01-01 00:00:00"
    names = {"con_nfd": "Jose\u0301 Nu\u0301n\u0303ez", "con_nfc": "Zoë", "con_none": None}
    with engine.begin() as connection:
        connection.execute(_ORG, {"t": now})
        for contact_id, name in names.items():
            connection.execute(
                text(
                    "INSERT INTO contacts (id, org_id, email, name, metadata, created_at, "
                    "updated_at) VALUES (:id, 'org_a', :email, :name, '{}', :t, :t)"
                ),
                {"id": contact_id, "email": f"{contact_id}@example.com", "name": name, "t": now},
            )
    upgrade(url)
    with engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT id, name FROM contacts")).all())
    assert stored == {
        "con_nfd": "José Núñez",
        "con_nfc": "Zoë",
        "con_none": None,
    }
    command.downgrade(alembic_config(url), "0008")
    upgrade(url)


def test_rows_dangling_from_before_do_not_stop_an_upgrade(backend: str, tmp_path: Path) -> None:
    """SQLite migrations run with foreign keys off and fail on dangling keys they leave; a row
    that dangled before (written with keys off, say by the sqlite3 shell) is not theirs, and
    must not stop every later start, each of which upgrades the embedded database."""
    if backend != "sqlite":
        pytest.skip("SQLite's foreign key check")
    path = tmp_path / "dangling.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0006")
    with sqlite3.connect(path) as raw:  # foreign keys off, as the sqlite3 shell has them
        raw.execute(
            "INSERT INTO audiences (id, org_id, name, slug, contact_count, created_at, "
            "updated_at) VALUES ('aud_x', 'org_gone', 'X', 'x', 0, '2026-01-01', '2026-01-01')"
        )
    upgrade(url)
    upgrade(url)  # nothing to do: still no complaint
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM organizations")).scalar() == 0
            columns = connection.exec_driver_sql("PRAGMA table_info(organizations)").all()
            assert "contact_count" in {column[1] for column in columns}  # 0007 applied
    finally:
        engine.dispose()


def test_a_database_at_the_heads_is_left_alone(
    scratch: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every CLI command upgrades the embedded database first; with nothing to apply, the
    migration environment (and its scan of every SQLite table for dangling keys) is skipped."""
    url, _ = scratch
    upgrade(url)

    def started(*_args: object) -> None:
        raise AssertionError("the migration environment ran with nothing to apply")

    monkeypatch.setattr(migrations.command, "upgrade", started)
    upgrade(url)
