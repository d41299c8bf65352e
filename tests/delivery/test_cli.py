"""``tidings worker`` as a real process: drain, clean shutdown, a crash mid-batch, two at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.delivery.conftest import SmtpSink, drain, fresh
from tests.factories import make_audience, make_campaign, make_contact, make_org
from tidings.models import Campaign, Message, Organization


def _worker(*args: str, **env: str) -> subprocess.Popen[str]:
    environment = {**os.environ, **{f"TIDINGS_{k.upper()}": v for k, v in env.items()}}
    return subprocess.Popen(
        [sys.executable, "-m", "tidings.cli", "worker", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def _campaign(db: Session, org: Organization, n: int) -> tuple[Campaign, list[Message]]:
    people = [make_contact(db, org, email=f"p{i}@example.com") for i in range(n)]
    audience = make_audience(db, org, members=people)
    return make_campaign(db, org, audience, people)


def _statuses(db: Session, campaign: Campaign) -> Counter[str]:
    fresh(db)
    rows = db.scalars(select(Message.status).where(Message.campaign_id == campaign.id))
    return Counter(rows)


def test_drain_delivers_and_prints_a_json_tally(
    db: Session, database_url: str, tmp_path: Path
) -> None:
    org = make_org(db)
    campaign, _ = _campaign(db, org, 3)
    outbox = tmp_path / "cli-outbox"

    process = _worker("--drain", database_url=database_url, email_transport=f"file://{outbox}")
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    tally = json.loads(stdout.strip().splitlines()[-1])
    assert tally["sent"] == 3 and tally["claimed"] == 3
    assert "claimed 3, sent 3" in stderr  # the per-batch progress line
    assert "development placeholder" in stderr  # anyone could sign its unsubscribe links
    assert len(list(outbox.glob("*.eml"))) == 3
    assert _statuses(db, campaign) == {"sent": 3}


def test_sigterm_finishes_the_batch_in_flight(
    db: Session, database_url: str, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    campaign, _ = _campaign(db, org, 6)
    smtp_sink.handler.data_delay = 0.1
    process = _worker("--batch-size", "6", database_url=database_url, email_transport=smtp_sink.url)
    _wait_for(lambda: len(smtp_sink.handler.received) >= 1)

    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert json.loads(stdout.strip().splitlines()[-1])["sent"] == 6
    assert len(smtp_sink.handler.received) == 6
    assert _statuses(db, campaign) == {"sent": 6}


def test_sigterm_stops_a_drain_after_its_batch(
    db: Session, database_url: str, smtp_sink: SmtpSink
) -> None:
    """A drain stops as the long-running worker does: the batch in flight finished, the tally
    printed, nothing left ``sending``. Killed at once, its batch waited out the lease."""
    org = make_org(db)
    campaign, _ = _campaign(db, org, 12)
    smtp_sink.handler.data_delay = 0.1
    process = _worker(
        "--drain", "--batch-size", "4", database_url=database_url, email_transport=smtp_sink.url
    )
    _wait_for(lambda: len(smtp_sink.handler.received) >= 1)

    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert "worker draining on " in stderr  # which database and outbox it used
    sent = json.loads(stdout.strip().splitlines()[-1])["sent"]
    assert 4 <= sent < 12  # the batch in flight, not the rest
    statuses = _statuses(db, campaign)
    assert statuses == {"sent": sent, "scheduled": 12 - sent}, statuses


def test_a_worker_killed_mid_batch_loses_nothing(
    db: Session, database_url: str, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    campaign, messages = _campaign(db, org, 12)
    smtp_sink.handler.data_delay = 0.1
    process = _worker(
        "--batch-size",
        "4",
        "--concurrency",
        "1",  # one message at a time: the kill lands mid-batch
        database_url=database_url,
        email_transport=smtp_sink.url,
        worker_lease_seconds="1",
    )
    _wait_for(lambda: len(smtp_sink.handler.received) >= 6)  # mid-way through batch two
    process.kill()
    process.wait(timeout=10)
    stranded = _statuses(db, campaign)["sending"]
    assert stranded > 0  # the killed worker held a batch it never finished

    smtp_sink.handler.data_delay = 0
    time.sleep(1.1)  # its lease expires
    drain()

    assert _statuses(db, campaign) == {"sent": 12}
    delivered = Counter(smtp_sink.handler.message_ids())
    assert set(delivered) == {f"<{m.id}@127.0.0.1>" for m in messages}
    # At-least-once: only messages of the batch in flight at the crash can arrive twice, and a
    # duplicate carries the same Message-ID, so the receiving side can drop it.
    assert sum(delivered.values()) - len(delivered) <= 4


def test_two_workers_never_deliver_one_message_twice(
    db: Session, database_url: str, smtp_sink: SmtpSink
) -> None:
    org = make_org(db)
    campaign, messages = _campaign(db, org, 300)
    smtp_sink.handler.data_delay = 0.005  # long enough that both workers overlap

    workers = [
        _worker(
            "--drain",
            "--batch-size",
            "10",
            database_url=database_url,
            email_transport=smtp_sink.url,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]

    assert [w.returncode for w in workers] == [0, 0], [o[1] for o in outputs]
    tallies = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(t["sent"] for t in tallies) == 300
    assert all(t["sent"] > 0 for t in tallies), tallies  # both took part
    delivered = Counter(smtp_sink.handler.message_ids())
    assert set(delivered) == {f"<{m.id}@127.0.0.1>" for m in messages}
    assert max(delivered.values()) == 1
    assert _statuses(db, campaign) == {"sent": 300}


def test_a_real_secret_gets_no_warning(db: Session, database_url: str, tmp_path: Path) -> None:
    process = _worker(
        "--drain",
        database_url=database_url,
        email_transport=f"file://{tmp_path}",
        secret_key="a-long-random-secret-of-this-installation",
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "placeholder" not in stderr
