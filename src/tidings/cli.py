"""``tidings``: the command line scripts drive.

Every command prints its machine-readable result alone on the last line of stdout (an id, a key,
a URL) and everything meant for a person on stderr, so ``$(tidings orgs create Acme)`` just works.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from tidings.config import DEVELOPMENT_SECRET, get_settings
from tidings.errors import ApiError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class _Commands(TyperGroup):
    """Every command: a database that cannot be reached, has no schema, was migrated by a newer
    version or is not a database at all, is one line that says what to do, not a traceback."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors its own click Context
        from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError

        from tidings.migrations import SchemaFromNewerVersion

        try:
            return super().invoke(ctx)
        except SchemaFromNewerVersion as exc:
            _error(str(exc))
            raise typer.Exit(code=1) from None
        except OperationalError as exc:
            _error(
                f"the database is unavailable: {_first_line(exc)}; check "
                "TIDINGS_DATABASE_URL and that the database server is running"
            )
            raise typer.Exit(code=1) from None
        except ProgrammingError as exc:
            if getattr(exc.orig, "sqlstate", None) != UNDEFINED_TABLE:
                raise
            _error(NO_SCHEMA)
            raise typer.Exit(code=1) from None
        except DatabaseError as exc:
            reason = _first_line(exc)
            if "not a database" not in reason:  # SQLite's answer for a file of something else
                raise
            _error(f"the database cannot be used: {reason}; check TIDINGS_DATABASE_URL")
            raise typer.Exit(code=1) from None
        finally:
            # Closed connections let SQLite remove its -wal and -shm files as the command ends.
            from tidings.db import reset_engine

            reset_engine()


app = typer.Typer(
    cls=_Commands,
    help="Tidings: audiences and templated sends.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
users_app = typer.Typer(help="Dashboard users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")

# A line stays one line in a log or a pipe. No markup: the lines quote what users typed, and
# ``orgs create "[/bold]"`` raised a MarkupError after the organization was committed.
human = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table
NO_SCHEMA = "the database has no Tidings schema; run `tidings db upgrade` first"
Port = Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")]


@app.callback()
def _configuration() -> None:
    """Tidings: audiences and templated sends."""
    # Every command reads the settings; a bad one is a line naming the variable, not a traceback.
    # Help reads none: it must show whatever the environment holds (click parses a command's
    # ``--help`` only after this runs).
    if "--help" in sys.argv[1:]:
        return
    from pydantic import ValidationError

    try:
        get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            variables = ", ".join(f"TIDINGS_{str(part).upper()}" for part in error["loc"])
            where = f"{variables}: " if variables else ""
            _error(f"{where}{error['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(code=1) from None


def _result(value: str) -> None:
    """The machine-readable answer: alone, on the last line of stdout."""
    sys.stdout.write(value + "\n")
    sys.stdout.flush()


def _error(message: str) -> None:
    human.print(Text.assemble(("error:", "red"), " ", message))


def _warning(message: str) -> None:
    human.print(Text.assemble(("warning:", "yellow"), " ", message))


def _first_line(exc: Any) -> str:
    """A driver error in one line: its own message (``orig``) when it has one."""
    return str(exc.orig or exc).strip().splitlines()[0]


def _fail(exc: ApiError) -> None:
    _error(exc.message)
    raise typer.Exit(code=1)


def _migrate_if_sqlite() -> None:
    """The embedded database migrates itself before any command uses it, so the first command on
    a new machine may be ``tidings orgs create``; quietly, since nothing usually changes
    (``tidings db upgrade`` is the command that reports what it applies)."""
    settings = get_settings()
    if settings.is_sqlite:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # before import: it logs then
        from tidings.migrations import upgrade

        upgrade(settings.database_url)


@contextmanager
def _database() -> Iterator[Session]:
    """The unit of work of a command that reads or writes rows, on a schema it knows: on a
    PostgreSQL schema older than the code, ``orgs create`` was a traceback about a column."""
    from tidings.db import session_scope

    _require_current_schema(long_running=False)
    with session_scope() as session:
        yield session


def _require_current_schema(*, long_running: bool) -> None:
    """Serve and the worker start only on a schema they know: SQLite migrates itself; a
    PostgreSQL database must have had ``tidings db upgrade``, or every request would fail. A
    database that is down now is no reason for a long-running process not to start: requests
    answer 503, batches retry, and both recover when it is back."""
    from sqlalchemy.exc import OperationalError

    logging.getLogger("alembic").setLevel(logging.WARNING)  # before import: it logs then
    from tidings.migrations import pending

    settings = get_settings()
    if settings.is_sqlite:
        _migrate_if_sqlite()
        return
    try:
        current, heads = pending(settings.database_url)
    except OperationalError:
        if not long_running:
            raise
        _warning("the database is unreachable; starting anyway")
        return
    if not current:
        _error(NO_SCHEMA)
        raise typer.Exit(code=1)
    if current != heads:
        _error(
            f"the database schema is at {', '.join(sorted(current))}, this "
            f"version needs {', '.join(sorted(heads))}; run `tidings db upgrade`"
        )
        raise typer.Exit(code=1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration (creates the schema on a new database), and say which."""
    from tidings.migrations import pending, upgrade

    url = get_settings().database_url
    before, heads = pending(url)
    upgrade(url)
    at = ", ".join(sorted(heads))
    if before == heads:
        human.print(f"database is up to date (schema {at}); nothing to apply")
    else:
        start = ", ".join(sorted(before)) or "empty"
        human.print(f"database upgraded: schema {start} -> {at}")
    _result("ok")


@orgs_app.command("create")
def orgs_create(
    name: str,
    timezone: Annotated[str, typer.Option(help="IANA time zone for scheduled sends")] = "UTC",
) -> None:
    """Create an organization; prints its id."""
    from tidings.orgs import create_organization

    try:
        with _database() as session:
            org = create_organization(session, name, timezone)
    except ApiError as exc:
        _fail(exc)
    human.print(f"created organization {org.name!r}")
    _result(org.id)


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="organization id")],
    scopes: Annotated[str, typer.Option(help="comma-separated scopes, or 'all'")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
) -> None:
    """Create an API key; prints the secret, which is shown this once and stored hashed."""
    from tidings.audit.service import record_event
    from tidings.auth import Principal, create_api_key, parse_scopes
    from tidings.orgs import get_organization

    try:
        with _database() as session:
            get_organization(session, org)
            key, secret = create_api_key(session, org, parse_scopes(scopes), name)
            record_event(
                session,
                Principal(org_id=org, actor_type="cli", actor_id=None),
                "api_key.created",
                target_type="api_key",
                target_id=key.id,
                data={"scopes": key.scopes.split(), "name": name},
            )
    except ApiError as exc:
        _fail(exc)
    human.print(f"created key {key.id} ({key.scopes}); store the secret now, it is not shown again")
    _result(secret)


_ONE_LINE = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


@orgs_app.command("list")
def orgs_list() -> None:
    """Every organization, oldest first, one per line on stdout, tab-separated: id, name, time
    zone, created, and how many contacts it has. The id is what ``--org`` takes."""
    from tidings.orgs import list_organizations
    from tidings.timeutil import isoformat_z

    with _database() as session:
        orgs = list_organizations(session)
    for org in orgs:
        name = org.name.translate(_ONE_LINE)  # a name may hold a tab or a newline
        fields = (org.id, name, org.timezone, isoformat_z(org.created_at))
        sys.stdout.write("\t".join((*fields, str(org.contact_count))) + "\n")
    human.print(f"{len(orgs)} organization(s)")


@keys_app.command("list")
def keys_list(org: Annotated[str, typer.Option("--org", help="organization id")]) -> None:
    """The organization's keys, newest first, one per line on stdout, tab-separated: id, the
    secret's first characters, scopes, name, created, revoked ("-" if active). The id is what
    ``keys revoke`` takes; ``keys create`` printed only the secret to stdout."""
    from tidings.auth import list_api_keys
    from tidings.orgs import get_organization
    from tidings.timeutil import isoformat_z

    try:
        with _database() as session:
            get_organization(session, org)
            keys = list_api_keys(session, org)
    except ApiError as exc:
        _fail(exc)
    for key in keys:
        revoked = isoformat_z(key.revoked_at) if key.revoked_at else "-"
        name = (key.name or "-").translate(_ONE_LINE)  # a name may hold a tab or a newline
        fields = (key.id, key.prefix, key.scopes, name, isoformat_z(key.created_at))
        sys.stdout.write("\t".join((*fields, revoked)) + "\n")
    human.print(f"{len(keys)} key(s)")


@keys_app.command("revoke")
def keys_revoke(
    org: Annotated[str, typer.Option("--org", help="organization id")],
    key_id: Annotated[str, typer.Argument(help="key id (key_...)")],
) -> None:
    """Revoke an API key; it is refused from the next request on."""
    from tidings.audit.service import record_event
    from tidings.auth import Principal, revoke_api_key

    with _database() as session:
        revoked = revoke_api_key(session, org, key_id)
        if revoked:  # as its creation is
            record_event(
                session,
                Principal(org_id=org, actor_type="cli", actor_id=None),
                "api_key.revoked",
                target_type="api_key",
                target_id=key_id,
            )
    if not revoked:
        _error(f"no active key {key_id!r} in {org!r}")
        raise typer.Exit(code=1)
    human.print(f"revoked {key_id}")
    _result(key_id)


@users_app.command("create")
def users_create(
    org: Annotated[str, typer.Option("--org", help="organization id")],
    email: Annotated[str, typer.Option(help="login email")],
    role: Annotated[str, typer.Option(help="owner or member")] = "member",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
) -> None:
    """Create a dashboard user; the password comes from TIDINGS_PASSWORD or --password-stdin."""
    from tidings.orgs import create_user

    password = (
        sys.stdin.readline().rstrip("\r\n")
        if password_stdin
        else os.environ.get("TIDINGS_PASSWORD", "")
    )
    if not password:
        _error("give a password in TIDINGS_PASSWORD or with --password-stdin")
        raise typer.Exit(code=1)
    try:
        with _database() as session:
            user = create_user(session, org, email, role, password)
    except ApiError as exc:
        _fail(exc)
    human.print(f"created {user.role} {user.email}")
    _result(user.id)


def _warn_of_a_public_secret() -> None:
    """Outside production the placeholder secret is allowed (``make run`` needs nothing set),
    but it is public: with it anyone can sign an unsubscribe link for any address of any
    organization. Serve and the worker (which signs the links) say so at start."""
    if get_settings().secret_key == DEVELOPMENT_SECRET:
        _warning(
            "TIDINGS_SECRET_KEY is the development placeholder, which anyone can use to forge "
            "unsubscribe links; set a long random secret before mail reaches real recipients"
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Port = 8000,
    workers: Annotated[int, typer.Option(min=1, help="server processes")] = 1,
) -> None:
    """Serve the API and the dashboard (on SQLite, migrations are applied first)."""
    import copy

    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    _require_current_schema(long_running=True)
    _warn_of_a_public_secret()
    human.print(f"serving on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    # Uvicorn writes its access log to stdout; send it to stderr with the rest, so the last stdout
    # line stays the command's result (``tidings demo`` prints the API key there).
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    uvicorn.run(
        "tidings.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=get_settings().log_level.lower(),
        log_config=log_config,
    )


@app.command()
def worker(
    drain: Annotated[
        bool, typer.Option("--drain", help="deliver everything due now, then exit")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="messages per batch (TIDINGS_WORKER_BATCH_SIZE)")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="parallel transport connections (TIDINGS_WORKER_CONCURRENCY); "
            "file:// outboxes are written by one thread",
        ),
    ] = None,
) -> None:
    """Deliver scheduled messages. Runs until SIGTERM/SIGINT (finishing the batch in flight);
    any number of workers may run at once. Prints a JSON tally on the last line."""
    import json
    import logging
    import signal
    import threading

    from tidings.delivery.service import build_worker
    from tidings.delivery.transports.base import TransportConfigError

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs each request at INFO, the SMS API's URL (and so the account id) with it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _require_current_schema(long_running=not drain)
    _warn_of_a_public_secret()
    try:
        engine = build_worker(settings, batch_size=batch_size, concurrency=concurrency)
    except TransportConfigError as exc:
        _error(str(exc))
        raise typer.Exit(code=1) from None
    try:
        # Either way a signal finishes the batch in flight and the tally is printed: killed at
        # once, a drain left its batch ``sending`` until the lease ran out.
        stop = threading.Event()

        def request_stop(signum: int, _frame: object) -> None:
            human.print(f"{signal.Signals(signum).name}: finishing the batch in flight")
            stop.set()
            # A second signal stops at once.
            signal.signal(signum, signal.SIG_DFL)

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        human.print(
            f"worker {'draining' if drain else 'started'} on "
            f"{_shown_url(settings.database_url)}: email to "
            f"{_shown_url(settings.email_transport)}, SMS to "
            f"{_shown_url(settings.sms_transport)}, unsubscribe links at "
            f"{settings.public_url}; SIGTERM or Ctrl-C to stop"
        )
        tally = engine.drain(stop) if drain else engine.run(stop)
    finally:
        engine.close()
    human.print(
        f"delivered {tally.counts['sent']}, failed {tally.counts['failed']}, "
        f"retrying {tally.counts['retried']} ({tally.batches} batches)"
    )
    _result(json.dumps(tally.as_dict(), separators=(",", ":")))


def _shown_url(url: str) -> str:
    """``url`` without its password: what a start-up line may print. A worker started in
    another directory than the server's reads another ``./tidings.db`` and ``./outbox``; the
    line says which."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Port = 8000,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="create the data and exit")] = False,
) -> None:
    """A first run: a demo organization, an owner, a key, audiences and contacts; then serve."""
    from tidings.demo import seed_demo

    _require_current_schema(long_running=False)
    result = seed_demo()
    url = f"http://{host}:{port}"
    human.print(Text("\nTidings demo", style="bold"))
    human.print(
        f"  organization  {result.org_id}\n"
        f"  dashboard     {url}/overview/audiences  (login {result.owner_email} / {result.password})\n"
        f"  API docs      {url}/docs\n"
        f"  API key       {result.api_key}\n\n"
        f"  try: curl -H 'Authorization: Bearer {result.api_key}' {url}/v1/audiences\n"
    )
    _result(result.api_key)
    if not no_serve:
        serve(host=host, port=port, workers=1)


if __name__ == "__main__":  # pragma: no cover
    app()
