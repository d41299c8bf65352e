"""Engine, sessions, the one bulk-insert helper and the one way to pass a list of values.

Services only ``flush()``; whoever opened the session (the request dependency, the worker's batch,
the CLI command) commits or rolls back. ``bulk_insert`` is the single way hot paths write many rows:
COPY on PostgreSQL, one ``executemany`` on SQLite, inside the caller's transaction.

Hot paths pass a list of values as ONE bound parameter (``one_of``: a PostgreSQL array through
``ANY``; ``value_list``: a JSON array the database splits), never as one placeholder per value:
10,000 addresses would pass SQLite's variable limit and make PostgreSQL parse a huge statement,
and even 200 ids (a delivery batch) cost more to render, bind and plan as ``IN (...)`` than the
query costs to run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from select import POLLIN, poll
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    TableValuedAlias,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from tidings.config import get_settings
from tidings.models import UTCDateTime

WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of SQLite write-ahead log kept after a checkpoint
# Connections a process's pool keeps and may open beyond them: together, how many requests can
# hold one at a time (``deps.get_session`` lets no more than that wait for one in a thread).
POOL_SIZE, POOL_OVERFLOW = 10, 20
POOL_CONNECTIONS = POOL_SIZE + POOL_OVERFLOW


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite gets WAL and a busy timeout so that a worker and the API (or two
    workers) can share one file: SQLite allows one writer at a time and the others wait."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        pooling: dict[str, Any] = (
            {"poolclass": NullPool}
            if in_memory
            else {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        )
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pooling
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so that BEGIN IMMEDIATE
        # (a write lock up front) is possible and deadlock-free for the worker's claim.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # A database host that drops packets (rather than refusing) must fail fast, so the API answers
    # 503 instead of hanging: libpq's connect timeout and TCP keepalives bound both cases.
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        connect_args={
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    )
    event.listen(engine, "checkout", partial(_replace_if_closed_by_server, engine.dialect))
    return engine


def _replace_if_closed_by_server(
    dialect: Dialect, dbapi_connection: Any, _record: Any, _proxy: Any
) -> None:
    """Hands out a pooled PostgreSQL connection only if the server has not closed it (a restart,
    ``pg_terminate_backend``, an idle timeout); the pool replaces one that it has.

    ``pool_pre_ping`` would ask with a ``SELECT 1``: a round trip on every checkout, one of the
    three or four of a list request. A server that ends a connection says so first (a FATAL
    message, then end of file), so an idle connection with nothing to read is one the server
    still holds, and the question costs one ``poll`` instead; only a connection with something to
    read is pinged. A host that vanished without a word looks alive here, and its first statement
    fails instead of a ping: either way the request is a 503 to retry and the pool drops the
    connection.
    """
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    if not _has_input(dbapi_connection.fileno()):
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as exc:
        raise DisconnectionError("the server closed the connection") from exc


def _has_input(fd: int) -> bool:
    """Whether the socket ``fd`` has bytes (or end of file) to read, without waiting."""
    poller = poll()
    poller.register(fd, POLLIN)
    return bool(poller.poll(0))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    # SQLite's own lower() folds ASCII only, so a search for "RÉNA" missed "Réna" (ILIKE is
    # ``lower(x) LIKE lower(y)`` here) and a suppression keyed "élise@…" missed "Élise@…".
    # Python's folding is PostgreSQL's and ``contacts.normalize.suppression_key``'s.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # A burst of writes can outrun the checkpoints and grow the WAL file; without a limit SQLite
    # keeps the file at its largest forever (1.2 GB seen), with one it truncates it back.
    cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cursor.close()


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _sqlite_begin(connection: Any) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False, autoflush=False)


def new_session(*, read_only: bool | None = None) -> Session:
    """A session on the configured database. ``read_only`` says what a request's session is for:

    * reading, on PostgreSQL: autocommit, no transaction. Each statement is consistent on its
      own (a page carries its total), and BEGIN and COMMIT were two of a list request's five
      round trips;
    * writing, on SQLite: ``BEGIN IMMEDIATE``. SQLite has one writer, and a transaction that has
      read (the API key) cannot become the writer once another has committed since
      (SQLITE_BUSY_SNAPSHOT, no waiting), so concurrent writes failed; a writing request takes
      the lock with its first statement and waits for it instead.

    The options ride on the session's bind, so making the session touches no connection."""
    if read_only is None:
        return _session_factory()()
    return _session_factory()(bind=_request_bind(read_only))


@lru_cache
def _request_bind(read_only: bool) -> Engine:
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT") if read_only else engine
    return engine if read_only else engine.execution_options(sqlite_begin="IMMEDIATE")


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work outside a request (CLI, worker): commit on success, roll back on error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def reset_engine() -> None:
    """Forget the cached engine (tests switch databases between runs)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    _session_factory.cache_clear()
    _request_bind.cache_clear()


@dataclass(frozen=True)
class Prepared:
    """A list statement built once, its request values named bind parameters, with this request's
    values. A statement as elaborate as a contact search (a CTE, an aliased entity, its count)
    cost ~1 ms of Python to build per request; built once, with its page and count statements
    (``pagination._prepared_windows``), a request only binds values: 1.1-1.4 ms off an audience
    search's median."""

    stmt: Select[Any]
    values: Mapping[str, Any]


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _text_array(values: Sequence[str | None]) -> Any:
    """A PostgreSQL ``text[]`` bound parameter."""
    return bindparam(None, list(values), type_=ARRAY(String))


def value_list(values: Sequence[str], postgres: bool) -> TableValuedAlias:
    """A one-column table ``value`` holding ``values``, from a single bound parameter: a JSON
    array, which the database splits. For 10,000 addresses (an import's lookup) psycopg's
    ``text[]`` dumper spent ~9 ms of Python quoting elements one by one; ``json.dumps`` takes
    ~1 ms, and PostgreSQL splits the array in less."""
    as_json = json.dumps(list(values))
    if postgres:
        elements = func.json_array_elements_text(sql_cast(bindparam(None, as_json, String), JSON))
        return elements.table_valued("value").render_derived()
    return func.json_each(as_json).table_valued("value")


def one_of(column: Any, values: Sequence[str], postgres: bool) -> ColumnElement[bool]:
    """``column IN values`` with the list as one parameter. On PostgreSQL ``= ANY(array)``, which
    probes an index on ``column`` once per value like an ``IN`` list does."""
    if postgres:
        return cast(ColumnElement[bool], column == any_(_text_array(values)))
    return cast(ColumnElement[bool], column.in_(select(value_list(values, False).c.value)))


# One encoder, made once: ``json.dumps`` with non-default options builds a new encoder per call,
# which was a third of the fan-out's time at 10,000 rows.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


# Distinct values remembered per bulk write; beyond this, values are converted each time (a memo of
# 10,000 per-row timestamps would only cost memory).
_MEMO_LIMIT = 64


def _json_text(value: Any) -> Any:
    return None if value is None else _encode_json(value)


def _sqlite_timestamp(value: datetime | None) -> str | None:
    # The same text SQLAlchemy's SQLite DateTime writes, so bulk rows and ORM rows compare alike.
    # ``isoformat`` (C) with the microseconds always written is that text, at a third of the cost
    # of ``strftime``.
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_timestamp(value: datetime | None) -> str | None:
    # ISO 8601 text, offset included, for COPY: formatting it here (once per distinct object,
    # ``_converted_rows``) and handing COPY a string cost half of psycopg's datetime dumper per
    # value: 10,000 contacts with two timestamps each went into a bare table in 27 ms, not 46.
    if value is None:
        return None
    if value.tzinfo is None:  # COPY would read it in the session's time zone
        raise ValueError("naive datetime given to a UTC column")
    return value.isoformat()


def _converters(
    table: Table, columns: Sequence[str], postgres: bool
) -> list[tuple[int, Callable[[Any], Any]]]:
    """``(position, converter)`` for the columns whose Python values the driver cannot take as
    they are; most columns (strings, numbers) need none."""
    converters: list[tuple[int, Callable[[Any], Any]]] = []
    for position, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, JSON) or getattr(column_type, "impl", None).__class__ is JSON:
            converters.append((position, _json_text))
        elif isinstance(column_type, UTCDateTime):
            converters.append((position, _pg_timestamp if postgres else _sqlite_timestamp))
    return converters


def _converted_rows(
    rows: Iterable[Sequence[Any]], converters: list[tuple[int, Callable[[Any], Any]]]
) -> Iterator[Sequence[Any]]:
    """Rows with only the columns that need it converted, in place in a list per row: no
    per-value dispatch for the columns that pass through (the hot loop of every bulk write).

    A value object seen before in this call is converted once: rows typically share a few
    objects (one ``now`` for every timestamp, one metadata dict per A/B variant). The memo is keyed
    by identity and holds the object itself, so an id cannot be reused by another object while
    the memo lives; callers must not mutate a value while its rows are being written.
    """
    if not converters:
        yield from rows
        return
    memo: dict[int, tuple[Any, Any]] = {}
    for row in rows:
        values = list(row)
        for position, convert in converters:
            value = values[position]
            seen = memo.get(id(value))
            if seen is not None and seen[0] is value:
                values[position] = seen[1]
                continue
            converted = convert(value)
            if len(memo) < _MEMO_LIMIT:
                memo[id(value)] = (value, converted)
            values[position] = converted
        yield values


def bulk_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order) in the session's transaction; returns the count.

    The rows bypass the ORM on purpose: no object per row, no round trip per row. Values are Python
    values (aware datetimes, dicts for JSON columns); they are converted here for the driver.
    """
    connection = session.connection()
    dbapi = connection.dialect.loaded_dbapi
    try:
        return _bulk_insert(connection, table, columns, rows)
    except dbapi.Error as exc:
        # The driver's own error, as SQLAlchemy's would be (IntegrityError, OperationalError,
        # ...; a lost connection marked as such), for the handlers that tell a conflict or an
        # outage from a bug: a deadlock in a COPY was a 500.
        raw = connection.connection.driver_connection
        lost = connection.dialect.is_disconnect(exc, raw, None)
        raise DBAPIError.instance(
            f"bulk insert into {table.name}", None, exc, dbapi.Error, connection_invalidated=lost
        ) from exc


def _bulk_insert(
    connection: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    postgres = connection.dialect.name == "postgresql"
    converted = _converted_rows(rows, _converters(table, columns, postgres))
    raw = connection.connection.driver_connection
    assert raw is not None
    count = 0

    column_list = ", ".join(f'"{c}"' for c in columns)
    if postgres:
        copy_sql = f'COPY "{table.name}" ({column_list}) FROM STDIN'
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in converted:
                copy.write_row(row)
                count += 1
        return count
    placeholders = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{table.name}" ({column_list}) VALUES ({placeholders})'
    cursor = raw.cursor()
    batch: list[Sequence[Any]] = []
    for row in converted:
        batch.append(row)
        if len(batch) == 5000:
            cursor.executemany(sql, batch)
            count += len(batch)
            batch.clear()
    if batch:
        cursor.executemany(sql, batch)
        count += len(batch)
    cursor.close()
    return count
