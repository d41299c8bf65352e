"""``make bench``: the hot paths against their physical baselines, one table, ``bench/results.json``.

    python -m bench                     # everything, SQLite and PostgreSQL (when reachable)
    python -m bench --quick             # small sizes, a couple of runs: a smoke run in seconds
    python -m bench --only fanout,list  # a subset: fanout, import, list, delivery, memory

Each figure is the median of several runs after a warm-up, and every ratio compares with a
baseline measured in the same run: the machine is shared, so absolute numbers drift between runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from bench import env  # noqa: E402
from bench.harness import Result, print_table, write_results  # noqa: E402

ALL = ("fanout", "import", "list", "delivery", "memory")


@dataclass(frozen=True)
class Sizes:
    fanout: int
    import_rows: int
    list_contacts: int
    list_audiences: int
    list_members: int
    delivery: int
    ramp_seconds: int
    memory_rounds: int
    repeat: int
    list_requests: int


FULL = Sizes(10_000, 10_000, 1_000_000, 1_000, 200_000, 10_000, 300, 20, 5, 200)
QUICK = Sizes(500, 500, 5_000, 50, 2_000, 300, 5, 3, 2, 20)


def _runners(sizes: Sizes) -> dict[str, Callable[[env.Backend], list[Result]]]:
    from bench import fanout, imports, listing

    runners: dict[str, Callable[[env.Backend], list[Result]]] = {
        "fanout": lambda b: fanout.run(b, sizes.fanout, sizes.repeat),
        "import": lambda b: imports.run(b, sizes.import_rows, sizes.repeat),
        "list": lambda b: listing.run(
            b, sizes.list_contacts, sizes.list_audiences, sizes.list_members, sizes.list_requests
        ),
    }
    try:
        from bench import delivery
    except ImportError:  # the delivery worker is not in this tree yet
        pass
    else:
        runners["delivery"] = lambda b: delivery.run(b, sizes.delivery, sizes.ramp_seconds)
    from bench import memory

    runners["memory"] = lambda b: memory.run(b, sizes.import_rows, sizes.memory_rounds)
    return runners


# Which backends each benchmark runs on: the list figures are about PostgreSQL's indexes at a
# million contacts; the server's memory is measured once, on the production backend.
BACKENDS = {
    "fanout": ("sqlite", "postgres"),
    "import": ("sqlite", "postgres"),
    "list": ("postgres",),
    "delivery": ("sqlite", "postgres"),
    "memory": ("postgres",),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, two runs each")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated: {','.join(ALL)}")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument(
        "--ramp-seconds", type=int, default=None, help="delivery lateness ramp (default 300)"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results.json")
    args = parser.parse_args(argv)
    # A terminated run still drops its scratch databases (the ``finally`` blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = QUICK if args.quick else FULL
    if args.ramp_seconds is not None:
        sizes = Sizes(**{**sizes.__dict__, "ramp_seconds": args.ramp_seconds})
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
    backends = [b for b in args.backends.split(",") if b]
    reason = env.postgres_unreachable() if "postgres" in backends else None
    if reason is not None:
        print(f"PostgreSQL skipped: {reason}", file=sys.stderr)
        backends.remove("postgres")
    results = run(wanted, backends, sizes)
    if args.quick:
        # The targets are stated for the full sizes: at 500 rows a request's fixed cost outweighs
        # the raw write it is compared with, and a toy run's "MISSED" would mislead.
        for result in results:
            result.met = None
        print("--quick: toy sizes; targets are judged at full sizes only", file=sys.stderr)
    print_table(results)
    if not args.no_write:
        write_results(results)
    return 0


def run(
    wanted: list[str], backends: list[str], sizes: Sizes, every_backend: bool = False
) -> list[Result]:
    """``every_backend`` runs each benchmark on each given backend (the smoke test's mode)."""
    runners = _runners(sizes)
    results: list[Result] = []
    for backend_name in ("sqlite", "postgres"):
        todo = [
            w for w in wanted if (every_backend or backend_name in BACKENDS[w]) and w in runners
        ]
        if backend_name not in backends or not todo:
            continue
        for name in todo:
            # A fresh database per benchmark, so one's leftovers never slow another down.
            with env.database(backend_name) as backend:
                started = time.perf_counter()
                results.extend(runners[name](backend))
                took = time.perf_counter() - started
                print(f"  {name} on {backend_name}: {took:.1f} s", file=sys.stderr, flush=True)
    missing = [w for w in wanted if w not in runners]
    for name in missing:
        print(f"{name}: not available in this tree", file=sys.stderr)
    return results


if __name__ == "__main__":
    sys.exit(main())
