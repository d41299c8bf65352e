"""``make soak``: a bounded load run on loopback against PostgreSQL.

A private database (``tidings_soak_<random>``, dropped afterwards), the API under uvicorn in its own
process, two ``tidings worker`` processes delivering to a file outbox, and client threads sending
mixed traffic — list, add, remove, import, create, send, read a campaign — for ``--seconds``.
Reports p50/p99 latency per operation and the error count (must be 0), then waits for the workers
to drain and checks the invariants: every ``contactCount`` equals the true member count, every
message is in a final state, and no message is lost (each campaign's ``scheduled`` equals its rows).
Exit status 1 when any of that fails.

    python -m bench.soak --seconds 120 --clients 4 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from bench.harness import percentile
from tidings.scratch import create_database, drop_database

POSTGRES_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FINAL = ("sent", "failed", "cancelled", "suppressed")
POOL = 400  # distinct addresses the clients add, remove and import


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(url: str) -> str:
    """A migrated database with an organization, an all-scopes key (returned) and a template."""
    os.environ["TIDINGS_DATABASE_URL"] = url
    from tidings.auth import ALL_SCOPES, create_api_key
    from tidings.config import get_settings
    from tidings.db import new_session, reset_engine
    from tidings.migrations import upgrade
    from tidings.models import Template
    from tidings.orgs import create_organization

    get_settings.cache_clear()
    reset_engine()
    upgrade(url)
    session = new_session()
    org = create_organization(session, "Soak")
    _, key = create_api_key(session, org.id, frozenset(ALL_SCOPES), "soak")
    session.add(
        Template(
            id="tpl_soak",
            org_id=org.id,
            slug="soak",
            name="Soak",
            channel="email",
            subject="Hello {{ name }}",
            html="<p>Hi {{ name }}</p>",
            text="Hi {{ name }}",
        )
    )
    session.commit()
    session.close()
    reset_engine()
    return key


class Load:
    def __init__(self, base_url: str, key: str, seconds: float, seed: int) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.deadline = time.monotonic() + seconds
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.seed = seed
        self.audiences: list[str] = []
        self.contacts: list[str] = []

    def setup(self) -> None:
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=60) as http:
            for i in range(POOL):
                r = http.post("/v1/contacts", json={"email": f"p{i}@example.com", "name": f"P{i}"})
                self.contacts.append(r.json()["id"])
            for i in range(3):
                r = http.post("/v1/audiences", json={"name": f"Soak {i}"})
                self.audiences.append(r.json()["id"])
                http.post(
                    f"/v1/audiences/{r.json()['id']}/contacts",
                    json={"contactIds": self.contacts[i * 50 : (i + 1) * 50]},
                )

    def _record(
        self, op: str, started: float, response: httpx.Response, ok: tuple[int, ...]
    ) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.latencies[op].append(elapsed)
            if response.status_code not in ok:
                self.errors.append(f"{op}: {response.status_code} {response.text[:200]}")

    def client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        ops = [
            ("list_audiences", 20),
            ("list_contacts", 15),
            ("add", 15),
            ("remove", 10),
            ("import", 8),
            ("create_contact", 10),
            ("send", 4),
            ("campaigns", 10),
        ]
        names, weights = zip(*ops, strict=True)
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=60) as http:
            while time.monotonic() < self.deadline:
                op = rng.choices(names, weights)[0]
                audience = rng.choice(self.audiences)
                started = time.perf_counter()
                try:
                    self._one(http, rng, op, audience, started)
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.errors.append(f"{op}: {type(exc).__name__} {exc}")

    def _one(
        self, http: httpx.Client, rng: random.Random, op: str, audience: str, started: float
    ) -> None:
        if op == "list_audiences":
            self._record(op, started, http.get("/v1/audiences", params={"limit": 50}), (200,))
        elif op == "list_contacts":
            r = http.get(f"/v1/audiences/{audience}/contacts", params={"page": rng.randint(1, 3)})
            self._record(op, started, r, (200,))
        elif op in ("add", "remove"):
            ids = rng.sample(self.contacts, rng.randint(1, 20))
            path = "contacts" if op == "add" else "contacts/remove"
            r = http.post(f"/v1/audiences/{audience}/{path}", json={"contactIds": ids})
            self._record(op, started, r, (200,))
        elif op == "import":
            rows = "".join(
                f"p{rng.randrange(POOL)}@example.com,Imported,{rng.random():.3f}\n"
                for _ in range(50)
            )
            r = http.post(
                f"/v1/audiences/{audience}/import",
                content="email,name,score\n" + rows,
                headers={"Content-Type": "text/csv"},
            )
            self._record(op, started, r, (200,))
        elif op == "create_contact":
            email = f"new-{secrets.token_hex(5)}@example.com"
            self._record(op, started, http.post("/v1/contacts", json={"email": email}), (201,))
        elif op == "send":
            r = http.post(
                f"/v1/audiences/{audience}/send",
                json={"from": "soak@example.com", "template": "soak", "ramp_minutes": 0},
                headers={"Idempotency-Key": secrets.token_hex(8)},
            )
            self._record(op, started, r, (200, 201))
        else:
            self._record(op, started, http.get("/v1/campaigns", params={"limit": 20}), (200,))


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_up(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the API server exited at start")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the API server did not come up")


def _has_worker(bin_dir: Path) -> bool:
    probe = subprocess.run(
        [str(bin_dir / "tidings"), "worker", "--help"], capture_output=True, check=False
    )
    return probe.returncode == 0


def _drain(url: str, seconds: float) -> int:
    """Waits until no message is due and unfinished; returns how many are left."""
    engine = create_engine(url)
    from tidings.models import Message

    deadline = time.monotonic() + seconds
    try:
        while True:
            with engine.connect() as connection:
                left = connection.scalar(
                    select(func.count()).select_from(Message).where(Message.status.not_in(FINAL))
                )
            if not left or time.monotonic() > deadline:
                return int(left or 0)
            time.sleep(0.5)
    finally:
        engine.dispose()


def _invariants(url: str) -> dict[str, Any]:
    from tidings.models import Audience, AudienceMember, Campaign, Message

    engine = create_engine(url)
    with engine.connect() as connection:
        true_counts = dict(
            connection.execute(
                select(AudienceMember.audience_id, func.count()).group_by(
                    AudienceMember.audience_id
                )
            ).all()
        )
        wrong_counts = [
            (aid, stored, true_counts.get(aid, 0))
            for aid, stored in connection.execute(select(Audience.id, Audience.contact_count))
            if stored != true_counts.get(aid, 0)
        ]
        rows = dict(
            connection.execute(
                select(Message.campaign_id, func.count()).group_by(Message.campaign_id)
            ).all()
        )
        lost = [
            (cid, scheduled, rows.get(cid, 0))
            for cid, scheduled in connection.execute(select(Campaign.id, Campaign.scheduled))
            if scheduled != rows.get(cid, 0)
        ]
        statuses = dict(
            connection.execute(select(Message.status, func.count()).group_by(Message.status)).all()
        )
    engine.dispose()
    return {"wrong_counts": wrong_counts, "lost": lost, "statuses": statuses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    bin_dir = Path(sys.executable).parent
    url = create_database(POSTGRES_URL, "tidings_soak")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        key = _seed(url)
        scratch = Path(tempfile.mkdtemp(prefix="tidings-soak-"))
        env = {
            **os.environ,
            "TIDINGS_DATABASE_URL": url,
            "TIDINGS_ENVIRONMENT": "test",
            "TIDINGS_EMAIL_TRANSPORT": f"file://{scratch / 'outbox'}",
            "TIDINGS_SMS_TRANSPORT": f"file://{scratch / 'sms'}",
            "TIDINGS_LOG_LEVEL": "WARNING",
            "TIDINGS_WORKER_POLL_SECONDS": "0.2",
        }
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = _spawn(
            [str(bin_dir / "tidings"), "serve", "--port", str(port)], env, scratch / "api.log"
        )
        processes.append(api)
        _wait_up(base_url, api)
        delivering = _has_worker(bin_dir) and args.workers > 0
        if delivering:
            for i in range(args.workers):
                processes.append(
                    _spawn([str(bin_dir / "tidings"), "worker"], env, scratch / f"worker{i}.log")
                )
        load = Load(base_url, key, args.seconds, args.seed)
        load.setup()
        load.deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=load.client, args=(i,)) for i in range(args.clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        left = _drain(url, 120) if delivering else None
        crashed = [p.args for p in processes if p.poll() is not None]
        invariants = _invariants(url)
        outbox = scratch / "outbox"
        invariants["outbox_files"] = len(list(outbox.glob("*.eml"))) if outbox.exists() else 0
        report = {
            "seconds": round(elapsed, 1),
            "clients": args.clients,
            "workers": args.workers if delivering else 0,
            "operations": {
                op: {
                    "n": len(samples),
                    "p50_ms": round(percentile(samples, 0.5), 1),
                    "p99_ms": round(percentile(samples, 0.99), 1),
                }
                for op, samples in sorted(load.latencies.items())
            },
            "requests": sum(len(s) for s in load.latencies.values()),
            "errors": len(load.errors),
            "first_errors": load.errors[:10],
            "unfinished_messages": left,
            "crashed_processes": crashed,
            **invariants,
        }
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_database(POSTGRES_URL, url)

    _print(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    healthy = (
        report["errors"] == 0
        and not report["wrong_counts"]
        and not report["lost"]
        and not report["crashed_processes"]
        and (report["unfinished_messages"] in (0, None))
        # Every sent email is in the outbox: nothing recorded as sent without being handed over.
        and report["outbox_files"] >= report["statuses"].get("sent", 0)
    )
    print("soak:", "PASS" if healthy else "FAIL")
    return 0 if healthy else 1


def _print(report: dict[str, Any]) -> None:
    print(
        f"{report['requests']} requests in {report['seconds']} s from {report['clients']} clients, "
        f"{report['workers']} workers delivering"
    )
    print(f"{'operation':<16} {'n':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for op, figures in report["operations"].items():
        print(f"{op:<16} {figures['n']:>7} {figures['p50_ms']:>8.1f} {figures['p99_ms']:>8.1f}")
    print(f"errors: {report['errors']}  {report['first_errors'][:3]}")
    print(f"messages by status: {report['statuses']}; unfinished: {report['unfinished_messages']}")
    print(f"contactCount mismatches: {report['wrong_counts']}; lost messages: {report['lost']}")
    print(f"outbox files: {report['outbox_files']}")


if __name__ == "__main__":
    raise SystemExit(main())
