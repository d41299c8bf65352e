"""The real ``tidings`` command, run as a subprocess against the test database: the machine-readable
result is alone on the last line of stdout, people's text goes to stderr, failures exit non-zero."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic import command as alembic_command
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.conftest import POSTGRES_URL
from tests.factories import ApiClient, auth, make_org
from tidings.auth import ALL_SCOPES, verify_password
from tidings.db import make_engine
from tidings.migrations import alembic_config
from tidings.models import ApiKey, Audience, AuditEvent, Contact, Organization, User
from tidings.scratch import create_database, drop_database


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def result(self) -> str:
        """The last stdout line: what ``$(tidings ...)`` captures."""
        lines = self.stdout.strip().splitlines()
        return lines[-1] if lines else ""


Tidings = Callable[..., Run]


@pytest.fixture
def tidings(settings_env: None, database_url: str) -> Tidings:
    """Runs ``tidings <args>`` with TIDINGS_DATABASE_URL pointing at this backend's database."""

    def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
        inherited = {k: v for k, v in os.environ.items() if k != "TIDINGS_PASSWORD"}
        full_env = {**inherited, "TIDINGS_DATABASE_URL": database_url, **(env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "tidings.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=60,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


def test_orgs_create_prints_the_id_alone(tidings: Tidings, db: Session) -> None:
    run = tidings("orgs", "create", "Acme Inc", "--timezone", "Europe/Paris")
    assert run.code == 0, run.stderr
    assert run.stdout.strip() == run.result and run.result.startswith("org_")
    assert "Acme Inc" in run.stderr
    org = db.get(Organization, run.result)
    assert org is not None and org.name == "Acme Inc" and org.timezone == "Europe/Paris"


def test_orgs_create_refuses_a_bad_time_zone(tidings: Tidings) -> None:
    run = tidings("orgs", "create", "Acme", "--timezone", "Mars/Olympus")
    assert run.code == 1 and run.stdout == ""
    assert "time zone" in run.stderr


def test_keys_create_all_scopes_gives_a_working_key(
    tidings: Tidings, db: Session, client: ApiClient
) -> None:
    org_id = tidings("orgs", "create", "Acme").result
    run = tidings("keys", "create", "--org", org_id, "--scopes", "all", "--name", "ci")
    assert run.code == 0, run.stderr
    secret = run.result
    assert secret.startswith("tid_") and run.stdout.strip() == secret
    stored = db.scalars(select(ApiKey).where(ApiKey.org_id == org_id)).one()
    assert stored.key_hash != secret and set(stored.scopes.split()) == set(ALL_SCOPES)
    created = client.post("/v1/audiences", headers=auth(secret), json={"name": "From CLI"})
    assert created.status_code == 201
    assert created.json()["organizationId"] == org_id


def test_keys_create_with_some_scopes_and_revoke(
    tidings: Tidings, db: Session, client: ApiClient
) -> None:
    org_id = tidings("orgs", "create", "Acme").result
    secret = tidings("keys", "create", "--org", org_id, "--scopes", "read:audiences").result
    assert client.get("/v1/audiences", headers=auth(secret)).status_code == 200
    assert client.post("/v1/audiences", headers=auth(secret), json={"name": "x"}).status_code == 403
    key_id = db.scalars(select(ApiKey.id).where(ApiKey.org_id == org_id)).one()
    run = tidings("keys", "revoke", "--org", org_id, key_id)
    assert run.code == 0 and run.result == key_id
    db.rollback()  # (a new snapshot: the command wrote from another process)
    events = db.scalars(select(AuditEvent.action).where(AuditEvent.target_id == key_id)).all()
    assert sorted(events) == ["api_key.created", "api_key.revoked"]
    assert client.get("/v1/audiences", headers=auth(secret)).status_code == 401
    again = tidings("keys", "revoke", "--org", org_id, key_id)
    assert again.code == 1 and again.stdout == ""


def test_keys_list_gives_the_ids_that_revoke_takes(tidings: Tidings, db: Session) -> None:
    """``KEY=$(tidings keys create ...)`` keeps the secret only; the id is found again here."""
    org_id = tidings("orgs", "create", "Acme").result
    tidings("keys", "create", "--org", org_id, "--scopes", "all", "--name", "ci\tbuild\nbot")
    tidings("keys", "create", "--org", org_id, "--scopes", "read:audiences")
    ids = list(db.scalars(select(ApiKey.id).where(ApiKey.org_id == org_id)))
    tidings("keys", "revoke", "--org", org_id, ids[0])
    run = tidings("keys", "list", "--org", org_id)
    assert run.code == 0, run.stderr
    rows = [line.split("\t") for line in run.stdout.splitlines()]
    assert sorted(row[0] for row in rows) == sorted(ids)
    assert all(len(row) == 6 and row[1].startswith("tid_") for row in rows)
    revoked = {row[0]: row[5] for row in rows}
    assert revoked[ids[0]].endswith("Z") and revoked[ids[1]] == "-"
    assert {row[3] for row in rows} == {"ci build bot", "-"}  # one key, one line
    assert "secret" not in run.stdout and "key_hash" not in run.stdout
    unknown = tidings("keys", "list", "--org", "org_nope")
    assert unknown.code == 1 and unknown.stdout == "" and "not found" in unknown.stderr


def test_orgs_list_gives_back_the_ids(tidings: Tidings) -> None:
    """An id ``orgs create`` printed once is found again; names need not be unique."""
    first = tidings("orgs", "create", "Acme").result
    second = tidings("orgs", "create", "Acme\tTwo\nLines", "--timezone", "Europe/Paris").result
    run = tidings("orgs", "list")
    assert run.code == 0, run.stderr
    rows = [line.split("\t") for line in run.stdout.splitlines()]
    assert [row[0] for row in rows] == [first, second]
    assert rows[1][1:3] == ["Acme Two Lines", "Europe/Paris"]
    assert all(len(row) == 5 and row[3].endswith("Z") and row[4] == "0" for row in rows)
    assert "2 organization(s)" in run.stderr


def test_text_that_looks_like_markup_is_printed_as_it_is(tidings: Tidings, db: Session) -> None:
    """The lines for a person quoted what was typed through rich's markup: ``[/bold]`` raised
    a MarkupError (a traceback) after the organization was committed."""
    run = tidings("orgs", "create", "[/bold]")
    assert run.code == 0 and "Traceback" not in run.stderr, run.stderr
    assert "[/bold]" in run.stderr and run.result.startswith("org_")
    bad_zone = tidings("orgs", "create", "X", "--timezone", "[/x]")
    assert bad_zone.code == 1 and "'[/x]'" in bad_zone.stderr and "Traceback" not in bad_zone.stderr


def test_keys_create_errors(tidings: Tidings, db: Session) -> None:
    org_id = make_org(db).id
    unknown_scope = tidings("keys", "create", "--org", org_id, "--scopes", "read:everything")
    assert unknown_scope.code == 1 and "unknown scope" in unknown_scope.stderr
    unknown_org = tidings("keys", "create", "--org", "org_nope", "--scopes", "all")
    assert unknown_org.code == 1 and "not found" in unknown_org.stderr
    assert unknown_scope.stdout == unknown_org.stdout == ""


def test_users_create_with_the_password_in_the_environment(tidings: Tidings, db: Session) -> None:
    org_id = make_org(db).id
    run = tidings(
        "users",
        "create",
        "--org",
        org_id,
        "--email",
        "Owner@Example.COM",
        "--role",
        "owner",
        env={"TIDINGS_PASSWORD": "correct horse battery"},
    )
    assert run.code == 0, run.stderr
    user = db.get(User, run.result)
    assert user is not None and user.role == "owner" and user.email == "Owner@example.com"
    assert verify_password(user.password_hash, "correct horse battery")
    assert "correct horse battery" not in run.stdout + run.stderr


def test_users_create_with_password_stdin(tidings: Tidings, db: Session) -> None:
    org_id = make_org(db).id
    run = tidings(
        "users",
        "create",
        "--org",
        org_id,
        "--email",
        "member@example.com",
        "--password-stdin",
        stdin="s3cret-from-stdin\n",
    )
    assert run.code == 0, run.stderr
    user = db.get(User, run.result)
    assert user is not None and user.role == "member"
    assert verify_password(user.password_hash, "s3cret-from-stdin")


def test_users_create_errors(tidings: Tidings, db: Session) -> None:
    org_id = make_org(db).id
    base = ("users", "create", "--org", org_id, "--email", "u@example.com")
    no_password = tidings(*base)
    assert no_password.code == 1 and "TIDINGS_PASSWORD" in no_password.stderr
    short = tidings(*base, env={"TIDINGS_PASSWORD": "short"})
    assert short.code == 1 and "at least 8" in short.stderr
    blank = tidings(*base, env={"TIDINGS_PASSWORD": " " * 12})
    assert blank.code == 1 and "not only spaces" in blank.stderr
    bad_role = tidings(*base, "--role", "admin", env={"TIDINGS_PASSWORD": "long enough pw"})
    assert bad_role.code == 1 and "role" in bad_role.stderr
    assert tidings(*base, env={"TIDINGS_PASSWORD": "long enough pw"}).code == 0
    duplicate = tidings(*base, env={"TIDINGS_PASSWORD": "long enough pw"})
    assert duplicate.code == 1 and "exists" in duplicate.stderr
    db.rollback()
    assert len(db.scalars(select(User)).all()) == 1


def test_a_bad_configuration_is_one_line_not_a_traceback(tidings: Tidings) -> None:
    run = tidings("orgs", "create", "Acme", env={"TIDINGS_ENVIRONMENT": "production"})
    assert run.code == 1 and run.stdout == ""
    assert "TIDINGS_SECRET_KEY" in run.stderr and "Traceback" not in run.stderr
    typo = tidings("db", "upgrade", env={"TIDINGS_WORKER_BATCH_SIZE": "many"})
    assert typo.code == 1 and "TIDINGS_WORKER_BATCH_SIZE" in typo.stderr
    assert "Traceback" not in typo.stderr
    for name, value in (("LOG_LEVEL", "bogus"), ("WORKER_BATCH_SIZE", "-5")):
        bad = tidings("db", "upgrade", env={f"TIDINGS_{name}": value})
        assert bad.code == 1 and f"TIDINGS_{name}" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    assert tidings("db", "upgrade", env={"TIDINGS_LOG_LEVEL": "debug"}).code == 0
    # Help shows whatever the environment holds.
    for args in (("orgs", "--help"), ("worker", "--help"), ("--help",)):
        helped = tidings(*args, env={"TIDINGS_DATABASE_URL": "garbage"})
        assert helped.code == 0 and "Usage" in helped.stdout, (args, helped.stderr)


def test_a_database_that_cannot_be_used_is_one_line_not_a_traceback(tidings: Tidings) -> None:
    down = {"TIDINGS_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/nodb"}
    for command in (("db", "upgrade"), ("orgs", "create", "Acme"), ("worker", "--drain")):
        run = tidings(*command, env=down)
        assert run.code == 1 and run.stdout == "", command
        assert "the database is unavailable" in run.stderr and "Traceback" not in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    for url in ("bogus://x", "mysql://root@localhost/db", "not a url"):
        run = tidings("orgs", "create", "Acme", env={"TIDINGS_DATABASE_URL": url})
        assert run.code == 1 and "TIDINGS_DATABASE_URL" in run.stderr, url
        assert "Traceback" not in run.stderr


def test_a_command_leaves_no_sqlite_journal_files_behind(tidings: Tidings, tmp_path: Path) -> None:
    """SQLite removes its -wal and -shm files when the last connection closes; a command that
    exits with its pool open left them (a 64 MB WAL, after a stress test)."""
    database = tmp_path / "own.db"
    run = tidings("orgs", "create", "Acme", env={"TIDINGS_DATABASE_URL": f"sqlite:///{database}"})
    assert run.code == 0, run.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["own.db"]


def test_a_port_out_of_range_is_a_usage_error(tidings: Tidings) -> None:
    for command in ("serve", "demo"):
        run = tidings(command, "--port", "99999")
        assert run.code == 2 and "65535" in run.stderr


def test_db_upgrade_is_idempotent(tidings: Tidings) -> None:
    run = tidings("db", "upgrade")
    assert run.code == 0, run.stderr
    assert run.result == "ok"


@pytest.fixture
def new_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database no command has touched yet: a file that does not exist, or an empty server
    database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    url = create_database(POSTGRES_URL, "tidings_cli")
    try:
        yield url
    finally:
        drop_database(POSTGRES_URL, url)


def test_the_first_command_on_a_new_database(
    tidings: Tidings, backend: str, new_database: str
) -> None:
    """SQLite migrates itself, whichever command comes first (a script's first line is often
    ``tidings orgs create``); an empty PostgreSQL database is a clear error that names the fix."""
    env = {"TIDINGS_DATABASE_URL": new_database}
    first = tidings("orgs", "create", "Acme", env=env)
    if backend == "postgres":
        assert first.code == 1 and first.stdout == ""
        assert "tidings db upgrade" in first.stderr and "Traceback" not in first.stderr
        upgraded = tidings("db", "upgrade", env=env)
        assert upgraded.code == 0 and "upgraded: schema empty -> " in upgraded.stderr
        again = tidings("db", "upgrade", env=env)
        assert again.code == 0 and "nothing to apply" in again.stderr
        first = tidings("orgs", "create", "Acme", env=env)
    assert first.code == 0, first.stderr
    key = tidings("keys", "create", "--org", first.result, "--scopes", "all", env=env)
    assert key.code == 0 and key.result.startswith("tid_"), key.stderr
    user = tidings(
        "users",
        "create",
        "--org",
        first.result,
        "--email",
        "owner@example.com",
        "--role",
        "owner",
        env={**env, "TIDINGS_PASSWORD": "long enough pw"},
    )
    assert user.code == 0 and user.result.startswith("usr_"), user.stderr


def test_serve_and_worker_refuse_a_postgresql_database_without_the_schema(
    tidings: Tidings, backend: str, new_database: str
) -> None:
    """Every request would be a 500, every batch an error: say what to run instead."""
    if backend != "postgres":
        pytest.skip("SQLite migrates itself")
    env = {"TIDINGS_DATABASE_URL": new_database}
    for command in (("serve", "--port", "9"), ("worker", "--drain")):
        run = tidings(*command, env=env)
        assert run.code == 1, run.stderr
        assert "run `tidings db upgrade`" in run.stderr and "Traceback" not in run.stderr


def test_every_command_refuses_a_postgresql_schema_older_than_the_code(
    tidings: Tidings, backend: str, new_database: str
) -> None:
    """One line naming the fix, not a traceback about a column the code expects."""
    if backend != "postgres":
        pytest.skip("SQLite migrates itself")
    env = {"TIDINGS_DATABASE_URL": new_database}
    assert tidings("db", "upgrade", env=env).code == 0
    alembic_command.downgrade(alembic_config(new_database), "-1")
    for args in (
        ("orgs", "create", "Old"),
        ("keys", "list", "--org", "org_x"),
        ("demo", "--no-serve"),
        ("serve", "--port", "9"),
        ("worker", "--drain"),
    ):
        run = tidings(*args, env=env)
        assert run.code == 1, (args, run.stderr)
        assert "run `tidings db upgrade`" in run.stderr and "Traceback" not in run.stderr, args


def test_every_command_refuses_a_schema_from_a_newer_version(
    tidings: Tidings, new_database: str
) -> None:
    """A rolled-back deploy: the database is at a revision this code does not have. On SQLite
    every command was an Alembic traceback; on PostgreSQL the advice was `db upgrade`, which
    was one too."""
    env = {"TIDINGS_DATABASE_URL": new_database}
    assert tidings("db", "upgrade", env=env).code == 0
    engine = make_engine(new_database)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    for args in (
        ("orgs", "list"),
        ("db", "upgrade"),
        ("demo", "--no-serve"),
        ("serve", "--port", "9"),
        ("worker", "--drain"),
    ):
        run = tidings(*args, env=env)
        assert run.code == 1, (args, run.stderr)
        assert "0099" in run.stderr and "newer version" in run.stderr, (args, run.stderr)
        assert "db upgrade" not in run.stderr and "Traceback" not in run.stderr, args


def test_names_longer_than_their_columns_are_refused(tidings: Tidings) -> None:
    """A clear line, not PostgreSQL's "value too long" (nor advice about the database URL)."""
    long_org = tidings("orgs", "create", "x" * 201)
    assert long_org.code == 1 and "longer than 200" in long_org.stderr, long_org.stderr
    org_id = tidings("orgs", "create", "Acme").result
    long_key = tidings("keys", "create", "--org", org_id, "--scopes", "all", "--name", "k" * 201)
    assert long_key.code == 1 and "longer than 200" in long_key.stderr, long_key.stderr


def test_a_file_that_is_not_a_database_is_one_line(tidings: Tidings, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a SQLite database, it only has the name of one\n" * 20)
    run = tidings("orgs", "list", env={"TIDINGS_DATABASE_URL": f"sqlite:///{junk}"})
    assert run.code == 1
    assert "file is not a database" in run.stderr and "Traceback" not in run.stderr


def test_demo_seeds_data_through_the_services_and_prints_a_key(
    tidings: Tidings, db: Session, client: ApiClient
) -> None:
    run = tidings("demo", "--no-serve")
    assert run.code == 0, run.stderr
    key = run.result
    assert key.startswith("tid_") and "owner@demo.tidings.dev" in run.stderr
    audiences = client.get("/v1/audiences", headers=auth(key)).json()
    counts = {a["slug"]: a["contactCount"] for a in audiences["data"]}
    assert counts == {"mumbai-premium-march-2026": 2, "all-customers": 5, "beta-testers": 1}
    assert len(db.scalars(select(Contact)).all()) == 5
    # A second run reuses the organization and prints a new key.
    second = tidings("demo", "--no-serve")
    assert second.code == 0 and second.result != key
    db.rollback()
    assert len(db.scalars(select(Audience)).all()) == 3
    assert client.get("/v1/audiences", headers=auth(second.result)).json()["total"] == 3


def test_demo_keeps_the_key_on_the_last_stdout_line_while_serving(
    settings_env: None, database_url: str, tmp_path: Path
) -> None:
    """The README's walk-through takes the key from `make run`: request logs must not bury it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TIDINGS_DATABASE_URL": database_url}
    stdout, stderr = tmp_path / "out", tmp_path / "err"
    with stdout.open("w") as out, stderr.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "demo", "--port", str(port)],
            stdout=out,
            stderr=err,
            env=env,
        )
        try:
            key = _wait_for_key(stdout, server)
            response = httpx.get(
                f"http://127.0.0.1:{port}/v1/audiences", headers=auth(key), timeout=10
            )
            assert response.status_code == 200 and response.json()["total"] == 3
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert stdout.read_text().strip() == key
    assert "GET /v1/audiences" in stderr.read_text()


def _wait_for_key(stdout: Path, server: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "tidings demo exited early"
        text = stdout.read_text().strip()
        if text:
            base = f"http://127.0.0.1:{_port_of(server)}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return text
        time.sleep(0.2)
    raise AssertionError("tidings demo did not start within 30 s")


def _port_of(server: subprocess.Popen[bytes]) -> str:
    args = [str(a) for a in server.args]  # type: ignore[union-attr]
    return args[args.index("--port") + 1]


def test_a_start_up_line_shows_urls_without_their_password() -> None:
    from tidings.cli import _shown_url

    assert _shown_url("smtp://user:s3cret@mail.example:587?starttls=true") == (
        "smtp://user:***@mail.example:587?starttls=true"
    )
    assert (
        _shown_url("postgresql+psycopg://app:pw@db:5432/t")
        == "postgresql+psycopg://app:***@db:5432/t"
    )
    assert _shown_url("sqlite:///./tidings.db") == "sqlite:///./tidings.db"
    assert _shown_url("file://./outbox/email") == "file://./outbox/email"
