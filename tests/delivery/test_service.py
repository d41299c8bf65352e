"""The worker as the CLI builds it from settings: transports decide how it sends and records."""

from __future__ import annotations

import pytest

from tests.delivery.conftest import configure
from tidings.config import get_settings
from tidings.delivery.service import build_worker
from tidings.delivery.worker import WorkerOptions


@pytest.mark.usefixtures("settings_env")
def test_a_file_outbox_is_written_by_one_thread_and_recorded_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, worker_concurrency="4", worker_batch_size="150")
    worker = build_worker(get_settings())
    try:
        assert (worker.options.concurrency, worker.options.record_every) == (1, 150)
    finally:
        worker.close()


@pytest.mark.usefixtures("settings_env")
def test_a_relay_gets_parallel_connections_and_small_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Committing every few messages bounds what a crashed worker can send twice to a relay."""
    configure(monkeypatch, email_transport="smtp://127.0.0.1:2525", worker_concurrency="4")
    worker = build_worker(get_settings(), concurrency=3)
    try:
        assert worker.options.concurrency == 3
        assert worker.options.record_every == WorkerOptions.record_every == 20
    finally:
        worker.close()
    worker = build_worker(get_settings())
    try:
        assert worker.options.concurrency == 4
    finally:
        worker.close()
