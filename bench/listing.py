"""Listing at scale (PostgreSQL): p50/p99 of ``GET /v1/audiences``, of an audience's contacts (with
and without ``search``), of the organization's contacts and of an audience's available contacts,
for an organization with 1,000 audiences and 1,000,000 contacts.

The fixture is written with COPY (``bulk_insert``), not through HTTP, then ``ANALYZE``d as
autovacuum would do in production. Requests go to a real ``tidings serve`` process over one
keep-alive connection, as an API client would send them; the baseline is ``GET /healthz`` on the
same connection (HTTP, the framework and one ``SELECT 1``): the floor of any request.

Search terms are what a person types to find someone: a surname with part of a number, part of
an email, part of a phone number, a whole address; each matches from one to about a thousand
contacts. A term that
matches a tenth of the organization (a common first name) is reported on its own row: its exact
``total`` has to count ~100,000 rows, which no index makes a 15 ms affair. So is a deep page
(``page=50&limit=100``): OFFSET walks the 4,900 entries before it.
"""

from __future__ import annotations

import itertools
import statistics

import httpx
from sqlalchemy import text

from bench import env
from bench.harness import Result, summarise, time_runs

TARGET_P99_MS = 15.0
SELECTIVE = (
    "Novak 1234",
    "user98765@",
    "ser4242",
    "4150003",
    "okafor 77",
    "Elif Berg 90",
    "user98765@example15.com",  # a whole address, pasted (run G on)
)
BROAD = ("Farid",)
UNINDEXED = ("ix_contacts_org_id_created_at", "ix_contacts_search_trgm")


def run(
    backend: env.Backend, contacts: int, audiences: int, member_every: int, requests: int
) -> list[Result]:
    org = env.make_org(backend)
    audience_ids = env.make_audiences(backend, org, audiences, prefix="list")
    big = audience_ids[0]
    every = max(1, contacts // member_every) if member_every else 1
    env.load_contacts(backend, org, contacts, [big], tag="", member_every=every)
    with backend.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE" if backend.postgres else "ANALYZE"))
    with env.served() as server, httpx.Client(base_url=server.base, headers=org.headers) as client:
        return _measure(backend, client, big, contacts, requests)


def _measure(
    backend: env.Backend, client: httpx.Client, big: str, contacts: int, requests: int
) -> list[Result]:
    def getter(paths: itertools.cycle[str]) -> object:
        def get() -> None:
            response = client.get(next(paths))
            assert response.status_code == 200, response.text

        return get

    def measure(paths: list[str]) -> list[float]:
        return time_runs(getter(itertools.cycle(paths)), requests, warmup=max(5, requests // 10))

    members = f"/v1/audiences/{big}/contacts"
    health = measure(["/healthz"])
    cases = [
        ("list audiences", contacts, ["/v1/audiences", "/v1/audiences?page=7&limit=100"]),
        ("audience contacts", contacts, [members, f"{members}?page=2"]),
        ("contacts (org)", contacts, ["/v1/contacts", "/v1/contacts?page=2"]),
        ("available contacts", contacts, [f"/v1/audiences/{big}/available-contacts"]),
        ("audience contacts search", contacts, [f"{members}?search={t}" for t in SELECTIVE]),
        ("contacts search (org)", contacts, [f"/v1/contacts?search={t}" for t in SELECTIVE]),
        ("audience search, broad term", contacts, [f"{members}?search={t}" for t in BROAD]),
        ("audience contacts, deep page", contacts, [f"{members}?page=50&limit=100"]),
    ]
    results = []
    for name, n, paths in cases:
        samples = measure(paths)
        judged = not any(word in name for word in ("broad", "deep"))
        target = f"p99 <= {TARGET_P99_MS:.0f} ms" if judged else ""
        met = (lambda _m, _r, s=samples: _p99(s) <= TARGET_P99_MS) if judged else None
        results.append(_per_request(summarise(name, backend.name, n, samples, health, target, met)))
    # The same requests without the list and search indexes (migrations 0002 and 0004), for the
    # before/after in one run (a few requests only: each is a scan of the organization's contacts).
    with backend.engine.begin() as connection:
        for index in UNINDEXED if backend.postgres else UNINDEXED[:1]:
            connection.execute(text(f"DROP INDEX {index}"))
    for name, n, paths in cases[1:3]:
        samples = time_runs(getter(itertools.cycle(paths)), max(3, requests // 20), warmup=2)
        result = summarise(f"{name}, no index", backend.name, n, samples, health, "before")
        results.append(_per_request(result))
    return results


def _per_request(result: Result) -> Result:
    """``n`` is the organization's size; the rate is requests per second."""
    result.unit_rate = round(1000 / result.median_ms, 1) if result.median_ms else None
    return result


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
