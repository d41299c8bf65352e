"""Delivery benchmark: messages per second for one worker, and lateness under a ramp.

    python -m bench.delivery [--backend postgres|sqlite] [--messages 20000] [--ramp-messages 12000]

Three runs, each on a fresh private database (PostgreSQL at TIDINGS_TEST_POSTGRES_URL, or a temp
SQLite file):
- ``file``: one worker draining N due emails to the ``file://`` outbox;
- ``smtp``: the same to an aiosmtpd sink running in its own process (``aiosmtpd -c Sink``);
- ``ramp``: M emails spread over a 60-second ramp, one long-running worker (file outbox); lateness
  is ``sent_at - scheduled_at`` per message (p50, p99, max).
Prints one JSON document (the figures the README quotes). Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def private_database(backend: str) -> Iterator[str]:
    from tidings.migrations import upgrade

    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tidings-bench-") as directory:
            url = f"sqlite:///{directory}/bench.db"
            upgrade(url)
            yield url
        return
    name = f"tidings_bench_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        from tidings.db import reset_engine

        reset_engine()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def configure(**env: str) -> None:
    from tidings.config import get_settings
    from tidings.db import reset_engine

    for key, value in env.items():
        os.environ[f"TIDINGS_{key.upper()}"] = value
    get_settings.cache_clear()
    reset_engine()


def seed(n: int, ramp_seconds: float, start_in: float = 0.0) -> None:
    """One organization, n contacts and one campaign of n messages, written in bulk."""
    from tidings.db import bulk_insert, session_scope
    from tidings.ids import new_id
    from tidings.models import Audience, Campaign, Contact, Message, Organization
    from tidings.timeutil import utcnow

    now = utcnow()
    starts_at = now + timedelta(seconds=start_in)
    with session_scope() as session:
        org = Organization(id=new_id("org"), name="Bench")
        session.add(org)
        session.flush()  # no ORM relationships here, so parents are flushed first by hand
        audience = Audience(id=new_id("aud"), org_id=org.id, name="All", slug="all")
        session.add(audience)
        session.flush()
        campaign = Campaign(
            id=new_id("cmp"),
            org_id=org.id,
            audience_id=audience.id,
            channel="email",
            from_address="Bench <bench@example.com>",
            status="scheduled",
            template_subject="Hello {{ name }}",
            template_text="Hi {{ name }} from {{ city }}.\n\nUnsubscribe: {{ unsubscribe_url }}\n",
            template_html="<p>Hi <b>{{ name }}</b> from {{ city }}.</p>"
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
            subject_variants=None,
            variables={"cta": "Read more"},
            starts_at=starts_at,
            ends_at=starts_at + timedelta(seconds=ramp_seconds),
            total=n,
            scheduled=n,
        )
        session.add(campaign)
        session.flush()
        contact_ids = [new_id("con") for _ in range(n)]
        bulk_insert(
            session,
            Contact.__table__,  # type: ignore[arg-type]
            ("id", "org_id", "email", "name", "metadata", "created_at", "updated_at"),
            (
                (cid, org.id, f"user{i}@example.com", f"User {i}", {"city": "Pune"}, now, now)
                for i, cid in enumerate(contact_ids)
            ),
        )
        bulk_insert(
            session,
            Message.__table__,  # type: ignore[arg-type]
            (
                "id",
                "org_id",
                "campaign_id",
                "contact_id",
                "channel",
                "to_address",
                "status",
                "scheduled_at",
                "metadata",
                "attempt",
                "created_at",
                "updated_at",
            ),
            (
                (
                    new_id("msg"),
                    org.id,
                    campaign.id,
                    cid,
                    "email",
                    f"user{i}@example.com",
                    "scheduled",
                    starts_at + timedelta(seconds=ramp_seconds * i / n),
                    {},
                    0,
                    now,
                    now,
                )
                for i, cid in enumerate(contact_ids)
            ),
        )


def lateness() -> dict[str, float]:
    from tidings.db import session_scope
    from tidings.models import Message

    with session_scope() as session:
        rows = session.execute(select(Message.scheduled_at, Message.sent_at)).all()
    late = sorted((sent - scheduled).total_seconds() for scheduled, sent in rows if sent)
    if not late:
        return {}
    return {
        "messages": len(late),
        "p50_s": round(statistics.median(late), 3),
        "p99_s": round(late[min(len(late) - 1, int(len(late) * 0.99))], 3),
        "max_s": round(late[-1], 3),
    }


def drain_rate(n: int, concurrency: int) -> dict[str, Any]:
    from tidings.config import get_settings
    from tidings.delivery.service import build_worker

    seed(n, ramp_seconds=0)
    worker = build_worker(get_settings(), concurrency=concurrency)
    started = time.perf_counter()
    tally = worker.drain()
    elapsed = time.perf_counter() - started
    worker.close()
    assert tally.counts["sent"] == n, tally.as_dict()
    return {
        "messages": n,
        "seconds": round(elapsed, 2),
        "per_second": round(n / elapsed),
        "batch_size": get_settings().worker_batch_size,
        "concurrency": concurrency,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_sink_process() -> Iterator[str]:
    """aiosmtpd's own discarding Sink, in a separate process so it does not share our GIL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-c",
            "aiosmtpd.handlers.Sink",
            "-l",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def ramp(n: int, seconds: float) -> dict[str, Any]:
    from tidings.config import get_settings
    from tidings.delivery.service import build_worker

    seed(n, ramp_seconds=seconds, start_in=1.0)
    worker = build_worker(get_settings())
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    time.sleep(seconds + 3)
    stop.set()
    thread.join()
    worker.close()
    return {"ramp_seconds": seconds, **lateness()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--smtp-messages", type=int, default=10_000)
    parser.add_argument("--file-concurrency", type=int, default=4)
    parser.add_argument("--smtp-concurrency", type=int, default=4)
    parser.add_argument("--ramp-messages", type=int, default=12_000)
    parser.add_argument("--ramp-seconds", type=float, default=60.0)
    parser.add_argument(
        "--outbox-parent",
        default=".",
        help="where the file outbox goes (default: the working directory, like ./outbox); "
        "/dev/shm measures the worker rather than the disk",
    )
    parser.add_argument("--skip", action="append", default=[], choices=["file", "smtp", "ramp"])
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    results: dict[str, Any] = {"backend": args.backend, "cpus": os.cpu_count()}
    # The outbox lives under the working directory, as the default ``file://./outbox`` does.
    results["outbox_parent"] = args.outbox_parent
    with tempfile.TemporaryDirectory(prefix=".bench-outbox-", dir=args.outbox_parent) as outbox:
        base = {"environment": "test", "email_transport": f"file://{Path(outbox) / 'email'}"}
        if "file" not in args.skip:
            with private_database(args.backend) as url:
                configure(database_url=url, **base)
                results["file"] = drain_rate(args.messages, args.file_concurrency)
        if "smtp" not in args.skip:
            with private_database(args.backend) as url, smtp_sink_process() as smtp:
                configure(database_url=url, **{**base, "email_transport": smtp})
                results["smtp"] = drain_rate(args.smtp_messages, args.smtp_concurrency)
        if "ramp" not in args.skip:
            with private_database(args.backend) as url:
                configure(database_url=url, **base)
                results["ramp"] = ramp(args.ramp_messages, args.ramp_seconds)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
