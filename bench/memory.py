"""Server memory: the resident set of a real ``tidings serve`` process (psutil) across repeated
imports of 10,000 rows and sends to 10,000 recipients. Flat means the RSS after 20 rounds is
within a few MiB of the RSS after 10: whatever a request allocates is given back (or reused by the
next one), however many requests came before.

The RSS after the warm-up is the process's working size (interpreter, libraries, caches filled by
one import and one send); it is reported, not judged.
"""

from __future__ import annotations

import time

import httpx
import psutil

from bench import env
from bench.harness import Result
from bench.imports import bench_csv

FLAT_MIB = 8.0  # growth allowed from round 10 to round 20 (allocator noise, not a leak)


def run(backend: env.Backend, rows: int, rounds: int) -> list[Result]:
    org = env.make_org(backend)
    env.make_template(backend, org)
    send_to, import_to = env.make_audiences(backend, org, 2, prefix="memory")
    env.load_contacts(backend, org, rows, [send_to], tag="m")
    with env.served() as server, httpx.Client(base_url=server.base, timeout=120) as client:
        process = psutil.Process(server.process.pid)
        one_round = _round_runner(client, org, send_to, import_to, rows)
        one_round(0)
        warm = _rss_mib(process)
        marks: dict[int, float] = {}
        started = time.perf_counter()
        for i in range(1, rounds + 1):
            one_round(i)
            if i in (rounds // 2, rounds):
                marks[i] = _rss_mib(process)
        per_round_ms = (time.perf_counter() - started) * 1000 / rounds
    half, full = marks[rounds // 2], marks[rounds]
    growth = full - half
    return [
        Result(
            name="server RSS, import+send rounds",
            backend=backend.name,
            n=rounds,
            median_ms=round(per_round_ms, 1),
            p99_ms=round(per_round_ms, 1),
            baseline_ms=None,
            ratio=None,
            unit_rate=None,
            target=(
                f"RSS MiB warm {warm:.0f} / @{rounds // 2} {half:.0f} / @{rounds} {full:.0f}; "
                f"flat (<{FLAT_MIB:.0f} MiB)"
            ),
            met=growth < FLAT_MIB,
        )
    ]


def _round_runner(client: httpx.Client, org: env.Org, send_to: str, import_to: str, rows: int):  # type: ignore[no-untyped-def]
    internal = {"Authorization": f"Bearer {env.INTERNAL_TOKEN}", "Content-Type": "text/csv"}

    def one_round(i: int) -> None:
        data = bench_csv(rows, f"mem{i}")
        response = client.post(
            f"/api/internal/audiences/{import_to}/import-csv", content=data, headers=internal
        )
        response.raise_for_status()
        body = {
            "channel": "email",
            "from": "hello@example.com",
            "template": "newsletter",
            "ramp_minutes": 60,
            "subject_variants": ["A", "B {{name}}", "C"],
            "scheduled_local": f"2031-01-{1 + i // 24:02d} {i % 24:02d}:00",
        }
        response = client.post(f"/v1/audiences/{send_to}/send", json=body, headers=org.headers)
        response.raise_for_status()

    return one_round


def _rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / 2**20
