"""``deps.get_session``'s turns: how many requests may use the database at once, and whose."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from tidings import deps
from tidings.db import POOL_CONNECTIONS
from tidings.deps import READ_CONNECTIONS, WRITE_CONNECTIONS, database_turn
from tidings.errors import ServiceUnavailable


def test_writers_leave_reads_their_own_connections(settings_env: None, backend: str) -> None:
    """However many writers queue (one at a time on SQLite), a read gets a connection at once;
    and no more requests than the pool has connections hold one."""

    async def scenario() -> None:
        state = SimpleNamespace()
        held = await _every_writer_turn(state, backend)
        writers = len(held)
        queued = asyncio.create_task(_enter(database_turn(state, writing=True)))
        await asyncio.sleep(0.01)
        assert not queued.done()  # the writers' share is taken
        reads = [database_turn(state, writing=False) for _ in range(POOL_CONNECTIONS - writers)]
        for turn in reads:
            await asyncio.wait_for(turn.__aenter__(), timeout=1)  # no wait behind the writers
        one_too_many = asyncio.create_task(_enter(database_turn(state, writing=False)))
        await asyncio.sleep(0.01)
        assert not one_too_many.done()  # every connection is in use
        await held[0].__aexit__(None, None, None)
        await asyncio.wait_for(one_too_many, timeout=1)  # the freed connection goes in turn
        assert not queued.done()

    assert READ_CONNECTIONS + WRITE_CONNECTIONS == POOL_CONNECTIONS
    _run(scenario())


def _run(scenario: Coroutine[Any, Any, None]) -> None:
    """A loop of its own, in a thread of its own: a browser test in this worker may have left
    one running in the main thread (Playwright's sync API), where asyncio.run() refuses to
    start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, scenario).result()


async def _every_writer_turn(state: SimpleNamespace, backend: str) -> list[Any]:
    """Every writer turn there is (one on SQLite), taken and kept: a turn no longer referenced
    would be given back."""
    held = [
        database_turn(state, writing=True)
        for _ in range(1 if backend == "sqlite" else WRITE_CONNECTIONS)
    ]
    for turn in held:
        await turn.__aenter__()
    return held


async def _enter(turn: object) -> None:
    await turn.__aenter__()  # type: ignore[attr-defined]


def test_a_request_that_waits_too_long_for_its_turn_is_a_503(
    settings_env: None, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "TURN_TIMEOUT_SECONDS", 0.05)

    async def scenario() -> None:
        state = SimpleNamespace()
        held = await _every_writer_turn(state, backend)
        with pytest.raises(ServiceUnavailable, match="busy"):
            await database_turn(state, writing=True).__aenter__()
        assert held  # still in use while the last writer waited

    _run(scenario())
