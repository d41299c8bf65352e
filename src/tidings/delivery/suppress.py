"""Adding addresses to an organization's suppression list: bounces (the worker) and one-click
unsubscribes (``/u/{token}``) share this one statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tidings.contacts.normalize import suppression_key
from tidings.ids import new_id
from tidings.models import Suppression

suppressions: Table = Suppression.__table__  # type: ignore[assignment]


def add_suppressions(
    connection: Connection | Session,
    entries: Sequence[tuple[str, str]],
    reason: str,
    now: datetime,
) -> list[str]:
    """Put (org_id, address) pairs on the suppression list; an address already there keeps its
    first reason (``ON CONFLICT DO NOTHING``), so repeating this is harmless. Returns the ids of
    the rows added."""
    rows = [
        {
            "id": new_id("sup"),
            "org_id": org,
            "address": suppression_key(address),
            "reason": reason,
            "created_at": now,
        }
        for org, address in sorted(set(entries))
    ]
    if not rows:
        return []
    dialect = (
        connection.get_bind().dialect if isinstance(connection, Session) else connection.dialect
    )
    insert = postgres_insert if dialect.name == "postgresql" else sqlite_insert
    # RETURNING (not rowcount) tells which rows were new: it is exact on both backends.
    statement = (
        insert(suppressions)
        .on_conflict_do_nothing(index_elements=["org_id", "address"])
        .returning(suppressions.c.id)
    )
    return [
        suppression_id
        for row in rows
        for (suppression_id,) in connection.execute(statement.values(row)).all()
    ]
