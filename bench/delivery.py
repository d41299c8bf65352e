"""Delivery: messages per second of one worker, and lateness under a ramp with two workers.

* ``file``: one in-process worker (the configured batch size and concurrency) drains N due emails
  into the ``file://`` outbox; the baseline writes the same number of ``.eml`` files of the same
  size with plain ``open``/``write``, in the same directory, in the same run.
* ``smtp``: the same worker to aiosmtpd's discarding ``Sink`` in its own process on loopback; the
  baseline is ``smtplib`` sending the same number of pre-built messages over one connection.
* ``lateness`` (PostgreSQL): N emails spread over a ramp (default 300 s) drained by two real
  ``tidings worker`` processes; lateness is ``sent_at - scheduled_at`` per message. SQLite has one
  writer, so the two-worker figure is PostgreSQL's; ``--ramp-seconds 60`` for quicker runs.

Seeds are written with ``bulk_insert``, not through HTTP: this measures the worker, not the send.
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import text

from bench import env
from bench.harness import Result, percentile, summarise, time_runs
from tidings.campaigns.service import MESSAGE_COLUMNS
from tidings.config import get_settings
from tidings.db import bulk_insert, reset_engine
from tidings.ids import new_id, new_ids
from tidings.models import Campaign, Message
from tidings.timeutil import utcnow

FILE_TARGET, SMTP_TARGET, LATENESS_P99_S = 3_000, 1_000, 1.0


def run(backend: env.Backend, n: int, ramp_seconds: int, repeat: int = 2) -> list[Result]:
    """Rates over ``n // 2`` messages (enough for a steady rate, and half the time), lateness
    over ``n``."""
    org = env.make_org(backend)
    (audience_id,) = env.make_audiences(backend, org, 1, prefix="delivery")
    contacts = env.load_contacts(backend, org, n, [audience_id], tag="d")
    seeder = _Seeder(backend, org.id, audience_id, contacts)
    rate_n = max(1, n // 2)
    results = [_rate_to_file(backend, seeder, rate_n, repeat)]
    with smtp_sink() as url:
        results.append(_rate_to_smtp(backend, seeder, url, rate_n, repeat))
    if backend.postgres:
        results.append(_lateness(backend, seeder, n, ramp_seconds))
    return results


class _Seeder:
    """One campaign of due (or ramped) messages to the audience's contacts, written in bulk."""

    def __init__(self, backend: env.Backend, org_id: str, audience_id: str, contacts: list[str]):
        self.backend, self.org_id, self.audience_id, self.contacts = (
            backend,
            org_id,
            audience_id,
            contacts,
        )

    def __call__(self, n: int, ramp_seconds: float = 0.0, start_in: float = 0.0) -> None:
        now = utcnow()
        starts = now + timedelta(seconds=start_in)
        with self.backend.session() as session:
            session.execute(text("DELETE FROM messages"))
            session.execute(text("DELETE FROM campaigns"))
            campaign = Campaign(
                id=new_id("cmp"),
                org_id=self.org_id,
                audience_id=self.audience_id,
                channel="email",
                from_address="Bench <bench@example.com>",
                status="scheduled",
                template_subject="Hello {{ name }}",
                template_text="Hi {{ name }} from {{ city }}.\n\nUnsubscribe: {{ unsubscribe_url }}\n",
                template_html="<p>Hi <b>{{ name }}</b> from {{ city }}.</p>"
                '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
                variables={"cta": "Read more"},
                starts_at=starts,
                ends_at=starts + timedelta(seconds=ramp_seconds),
                total=n,
                scheduled=n,
            )
            session.add(campaign)
            session.flush()
            window = ramp_seconds * 1_000_000
            rows = (
                (
                    message_id,
                    self.org_id,
                    campaign.id,
                    contact_id,
                    "email",
                    f"{contact_id}@example.com",
                    "scheduled",
                    starts + timedelta(microseconds=window * i // n),
                    {},
                    0,
                    now,
                    now,
                )
                for i, (message_id, contact_id) in enumerate(
                    zip(new_ids("msg", n), self.contacts[:n], strict=True)
                )
            )
            bulk_insert(session, Message.__table__, MESSAGE_COLUMNS, rows)  # type: ignore[arg-type]
            session.commit()


def _drain(n: int) -> None:
    from tidings.delivery.service import build_worker

    worker = build_worker(get_settings())
    try:
        tally = worker.drain()
    finally:
        worker.close()
    assert tally.counts["sent"] == n, tally.as_dict()


def _warm_up(seed: _Seeder, n: int) -> None:
    """A tenth of the messages first: imports, template caches, connections, the file system."""
    seed(max(1, n // 10))
    _drain(max(1, n // 10))


def _configure(transport: str) -> None:
    os.environ["TIDINGS_EMAIL_TRANSPORT"] = transport
    get_settings.cache_clear()
    reset_engine()


def _outbox_root(backend: env.Backend) -> Path:
    """tmpfs when there is one: on this shared VM, creating files on the disk waits on the ext4
    journal, which PostgreSQL's commits (ours and other jobs') keep busy, so a disk outbox
    measured the neighbours (2,300/s one run, 4,000/s the next), not the worker.
    ``TIDINGS_BENCH_OUTBOX`` chooses another parent directory."""
    chosen = os.environ.get("TIDINGS_BENCH_OUTBOX")
    if chosen:
        return Path(chosen)
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else backend.outbox


def _rate_to_file(backend: env.Backend, seed: _Seeder, n: int, repeat: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="tidings-bench-", dir=_outbox_root(backend)) as root:
        return _rate_to_directory(backend, seed, Path(root), n, repeat)


def _rate_to_directory(
    backend: env.Backend, seed: _Seeder, root: Path, n: int, repeat: int
) -> Result:
    outbox = root / "email"
    _configure(f"file://{outbox}")
    _warm_up(seed, n)
    samples = time_runs(lambda: _drain(n), repeat, warmup=0, setup=lambda: seed(n))
    size = _typical_size(outbox)
    plain = root / "plain"
    plain.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(size // 2).hex().encode()

    def write_files() -> None:
        for name in new_ids("msg", n):
            with open(plain / f"{name}.eml", "wb") as handle:
                handle.write(payload)

    base = time_runs(write_files, repeat, warmup=1)
    return summarise(
        f"worker -> file outbox ({'tmpfs' if str(root).startswith('/dev/shm') else 'disk'})",
        backend.name,
        n,
        samples,
        base,
        target=f">= {FILE_TARGET:,} msg/s",
        met=lambda median, _r: n / (median / 1000) >= FILE_TARGET,
    )


def _typical_size(outbox: Path) -> int:
    sizes = [p.stat().st_size for _, p in zip(range(50), outbox.rglob("*.eml"), strict=False)]
    return int(statistics.median(sizes)) if sizes else 1500


def _rate_to_smtp(backend: env.Backend, seed: _Seeder, url: str, n: int, repeat: int) -> Result:
    _configure(url)
    _warm_up(seed, n)
    samples = time_runs(lambda: _drain(n), repeat, warmup=0, setup=lambda: seed(n))
    host, port = url.removeprefix("smtp://").split(":")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "b@example.com", "u@example.com", "Hi"
    message.set_content("Hi there\n" * 20)
    message.add_alternative("<p>Hi there</p>" * 20, subtype="html")
    data = message.as_bytes()

    def raw_smtp() -> None:
        with smtplib.SMTP(host, int(port)) as client:
            for _ in range(n):
                client.sendmail("b@example.com", ["u@example.com"], data)

    base = time_runs(raw_smtp, repeat, warmup=0)
    return summarise(
        "worker -> SMTP sink (loopback)",
        backend.name,
        n,
        samples,
        base,
        target=f">= {SMTP_TARGET:,} msg/s",
        met=lambda median, _r: n / (median / 1000) >= SMTP_TARGET,
    )


def _lateness(backend: env.Backend, seed: _Seeder, n: int, ramp_seconds: int) -> Result:
    _configure(f"file://{backend.outbox / 'email'}")
    seed(n, ramp_seconds=ramp_seconds, start_in=2.0)
    tidings = str(Path(sys.executable).parent / "tidings")
    workers = [
        subprocess.Popen(
            [tidings, "worker"],
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + ramp_seconds + 60
        while time.monotonic() < deadline:
            time.sleep(1)
            if _unsent(backend) == 0:
                break
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    with backend.engine.connect() as connection:
        rows = connection.execute(text("SELECT scheduled_at, sent_at FROM messages")).all()
    late = [(sent - scheduled).total_seconds() * 1000 for scheduled, sent in rows if sent]
    assert len(late) == n, f"{n - len(late)} of {n} messages unsent after the ramp"
    p99_s = percentile(late, 0.99) / 1000
    result = summarise(
        f"lateness, 2 workers, {ramp_seconds} s ramp",
        backend.name,
        n,
        late,
        target=f"p99 < {LATENESS_P99_S:.0f} s",
        met=lambda _m, _r: p99_s < LATENESS_P99_S,
    )
    result.unit_rate = round(n / ramp_seconds, 1)  # the ramp's pace, messages per second
    return result


def _unsent(backend: env.Backend) -> int:
    with backend.engine.connect() as connection:
        query = text("SELECT count(*) FROM messages WHERE status IN ('scheduled', 'sending')")
        return int(connection.execute(query).scalar_one())


@contextmanager
def smtp_sink() -> Iterator[str]:
    """aiosmtpd's own discarding Sink, in a separate process so it does not share our GIL."""
    port = env.free_port()
    command = [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink"]
    process = subprocess.Popen(
        [*command, "-l", f"127.0.0.1:{port}"],
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
