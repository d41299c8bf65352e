"""Measurement helpers for ``make bench``: repeat after a warm-up, report median and p99, compare
each figure with a baseline measured in the same run (the machine is shared and noisy, so only
same-run ratios mean anything)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results.json"


@dataclass
class Result:
    name: str
    backend: str
    n: int
    median_ms: float
    p99_ms: float
    baseline_ms: float | None
    ratio: float | None
    unit_rate: float | None  # units (rows, messages) per second at the median
    target: str = ""
    met: bool | None = None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def time_runs(
    run: Callable[[], object],
    repeat: int,
    warmup: int = 1,
    setup: Callable[[], object] | None = None,
) -> list[float]:
    """Milliseconds per run; ``setup`` runs before each run and is not timed."""
    samples = []
    for i in range(warmup + repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        run()
        elapsed = (time.perf_counter() - start) * 1000
        if i >= warmup:
            samples.append(elapsed)
    return samples


def summarise(
    name: str,
    backend: str,
    n: int,
    samples: list[float],
    baseline: list[float] | None = None,
    target: str = "",
    met: Callable[[float, float | None], bool] | None = None,
) -> Result:
    median = statistics.median(samples)
    base = statistics.median(baseline) if baseline else None
    ratio = round(median / base, 2) if base else None
    return Result(
        name=name,
        backend=backend,
        n=n,
        median_ms=round(median, 2),
        p99_ms=round(percentile(samples, 0.99), 2),
        baseline_ms=round(base, 2) if base is not None else None,
        ratio=ratio,
        unit_rate=round(n / (median / 1000), 1) if median else None,
        target=target,
        met=met(median, ratio) if met else None,
    )


def print_table(results: list[Result]) -> None:
    header = (
        f"{'benchmark':<34} {'backend':<9} {'n':>8} {'median ms':>10} {'p99 ms':>9} "
        f"{'base ms':>8} {'ratio':>6} {'rate/s':>10}  target"
    )
    print(header)
    print("-" * len(header))
    for r in results:

        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        mark = "" if r.met is None else ("  ok" if r.met else "  MISSED")
        print(
            f"{r.name:<34} {r.backend:<9} {r.n:>8} {fmt(r.median_ms, '.1f'):>10} "
            f"{fmt(r.p99_ms, '.1f'):>9} {fmt(r.baseline_ms, '.1f'):>8} {fmt(r.ratio, '.2f'):>6} "
            f"{fmt(r.unit_rate, ',.0f'):>10}  {r.target}{mark}"
        )


def write_results(results: list[Result]) -> None:
    RESULTS.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
