"""The send engine: claim a batch, compose it, push it through the transports, record the outcomes.

It depends on a ``Store`` (the database side, ``store.py``) and on messengers (``transports/``) and
knows the insides of neither. Any number of workers, on any number of machines, share the work:
claiming is safe under concurrency and outcomes are fenced (see ``store.py``).

Outcomes: delivered → ``sent``; a permanent refusal → ``failed`` (a refused recipient also lands on
the suppression list as a ``bounce``); a transient one → back to ``scheduled`` after an exponential
backoff, until ``max_attempts`` is reached and it is ``failed``. Nothing is handed to a transport
after the batch's lease has run out (another worker may own those messages by then): the rest of
the batch is requeued untried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import OperationalError

from tidings.delivery.compose import Senders, Skip, compose, readdressed
from tidings.delivery.store import BatchContext, ClaimedMessage, Result
from tidings.delivery.transports.base import (
    Deferred,
    Delivered,
    Email,
    Messenger,
    Outcome,
    Outgoing,
    Rejected,
    short,
)
from tidings.timeutil import isoformat_z, utcnow

log = logging.getLogger("tidings.worker")

MAX_BACKOFF_SECONDS = 3600.0
# An idle worker naps at least this long, so messages due a few milliseconds apart (a ramp) are
# gathered into batches instead of claimed one round trip at a time.
MIN_NAP_SECONDS = 0.05
# How often an idle worker looks for campaigns nothing will ever complete (see the store).
SWEEP_SECONDS = 30.0
# After a failed batch (the database away) the worker waits the poll interval, doubled per
# further failure up to this: it polled every 0.5 s and logged a traceback each time.
MAX_FAILED_BATCH_WAIT_SECONDS = 30.0


class Store(Protocol):
    def claim(self, limit: int, lease_seconds: float, now: datetime) -> list[ClaimedMessage]: ...

    def next_due_at(self) -> datetime | None: ...

    def load_context(self, claimed: Sequence[ClaimedMessage]) -> BatchContext: ...

    def record(self, results: Sequence[Result], now: datetime) -> int: ...

    def recorder(self) -> AbstractContextManager[Callable[[Sequence[Result], datetime], int]]: ...

    def complete_campaigns(self, campaign_ids: Sequence[str], now: datetime) -> int: ...

    def complete_settled_campaigns(self, now: datetime) -> int: ...


MessengerFactory = Callable[[str], Messenger]  # channel ("email" | "sms") → a new messenger


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 200
    lease_seconds: float = 120.0
    max_attempts: int = 10
    retry_base_seconds: float = 60.0
    concurrency: int = 1  # parallel transport connections per batch
    poll_seconds: float = 0.5
    # Outcomes are committed every this many messages (or RECORD_SECONDS) of a connection, not once
    # per batch: a worker killed after a relay accepted a message sends it again once its lease
    # expires, so this bounds how many can arrive twice (same Message-ID) to one chunk.
    record_every: int = 20


RECORD_SECONDS = 0.5


def _add_accepted(total: int, more: int) -> int:
    """Sums ``record`` answers; -1 (the driver could not count) makes the sum unknown."""
    return -1 if total < 0 or more < 0 else total + more


@dataclass
class Tally:
    """What a batch (or a whole run) did; printed per batch and as the run's result."""

    batches: int = 0
    claimed: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, other: Tally) -> None:
        self.batches += other.batches
        self.claimed += other.claimed
        self.counts.update(other.counts)
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, int | float]:
        keys = ("sent", "failed", "retried", "requeued", "suppressed", "cancelled", "fenced")
        return {
            "batches": self.batches,
            "claimed": self.claimed,
            **{key: self.counts[key] for key in keys},
            "seconds": round(self.seconds, 3),
        }

    def line(self) -> str:
        rate = self.claimed / self.seconds if self.seconds > 0 else 0.0
        c = self.counts
        return (
            f"batch: claimed {self.claimed}, sent {c['sent']}, failed {c['failed']}, "
            f"retried {c['retried']}, requeued {c['requeued']}, suppressed {c['suppressed']}, "
            f"cancelled {c['cancelled']}, "
            f"fenced {c['fenced']} in {self.seconds:.3f}s ({rate:.0f} msg/s)"
        )


class Worker:
    def __init__(
        self,
        store: Store,
        open_messenger: MessengerFactory,
        senders: Senders,
        options: WorkerOptions,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.open_messenger = open_messenger
        self.senders = senders
        self.options = options
        self.clock = clock
        self._last_sweep = float("-inf")
        self._pool = (
            ThreadPoolExecutor(options.concurrency, thread_name_prefix="tidings-send")
            if options.concurrency > 1
            else None
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def run_batch(self) -> Tally:
        """One batch end to end. Returns its tally (``claimed == 0``: nothing was due)."""
        started = time.perf_counter()
        claimed_at = self.clock()
        claimed = self.store.claim(self.options.batch_size, self.options.lease_seconds, claimed_at)
        tally = Tally(claimed=len(claimed))
        if not claimed:
            return tally
        context = self.store.load_context(claimed)
        now = self.clock()
        results: list[Result] = []
        work: list[tuple[ClaimedMessage, Outgoing]] = []
        for scheduled in claimed:
            message = readdressed(scheduled, context)
            composed = _compose(message, context, self.senders, now)
            if isinstance(composed, Skip):
                results.append(
                    Result(message, composed.status, at=now, error=short(composed.reason))
                )
            else:
                work.append((message, composed))
        accepted = self.store.record(results, self.clock()) if results else 0
        delivered, recorded = self._deliver(work, self._send_deadline(claimed_at))
        accepted = _add_accepted(accepted, recorded)
        results += delivered
        self.store.complete_campaigns([m.campaign_id for m in claimed], self.clock())
        tally.batches = 1
        tally.counts.update(_kind(r) for r in results)
        if accepted >= 0:
            tally.counts["fenced"] = len(results) - accepted
        tally.seconds = time.perf_counter() - started
        log.info(tally.line())
        _log_problems(results)
        return tally

    def drain(self, stop: threading.Event | None = None) -> Tally:
        """Deliver everything due now (retries included, when their backoff has passed), then
        return; or, once ``stop`` is set, after the batch in flight (its untried messages go
        back to the queue). For scripts and tests."""
        total = Tally()
        while stop is None or not stop.is_set():
            tally = self.run_batch()
            if tally.claimed == 0:
                break
            total.add(tally)
        self.store.complete_settled_campaigns(self.clock())
        return total

    def run(self, stop: threading.Event) -> Tally:
        """Until ``stop`` is set; an in-flight batch is always finished first. A failing database
        is logged and retried: messages this worker claimed meanwhile are reclaimed when their
        lease expires, by this worker or another."""
        total = Tally()
        failures = 0
        while not stop.is_set():
            try:
                tally = self.run_batch()
            except Exception as exc:
                failures += 1
                wait = min(
                    self.options.poll_seconds * 2 ** min(failures - 1, 16),
                    MAX_FAILED_BATCH_WAIT_SECONDS,
                )
                if failures == 1 and not isinstance(exc, OperationalError):
                    # The whole story once, then a line per try. A database that cannot be
                    # reached is a line from the start: its traceback says nothing more.
                    log.exception("batch failed; retrying in %.1fs", wait)
                else:
                    again = " again" if failures > 1 else ""
                    log.warning("batch failed%s (%s); retrying in %.1fs", again, _cause(exc), wait)
                stop.wait(wait)
                continue
            if failures:
                log.info("batches run again after %d failures", failures)
                failures = 0
            total.add(tally)
            if tally.claimed < self.options.batch_size:
                self._sweep()
                stop.wait(self._nap_seconds())
        return total

    def _sweep(self) -> None:
        if time.monotonic() - self._last_sweep < SWEEP_SECONDS:
            return
        self._last_sweep = time.monotonic()
        try:
            self.store.complete_settled_campaigns(self.clock())
        except Exception:
            log.exception("could not complete settled campaigns")

    def _nap_seconds(self) -> float:
        """Until the next message is due, within [MIN_NAP_SECONDS, poll_seconds]."""
        poll = self.options.poll_seconds
        try:
            due = self.store.next_due_at()
        except Exception:
            log.exception("could not read the next due time")
            return poll
        if due is None:
            return poll
        wait = (due - self.clock()).total_seconds()
        return min(max(wait, MIN_NAP_SECONDS), poll)

    def _send_deadline(self, claimed_at: datetime) -> datetime:
        """No message is handed to a transport after this: once the lease runs out another worker
        may claim the batch, and a message must not be sent by two live workers. So a push begun
        before the deadline must end before the lease does, and the second half of the lease is
        left to it: a relay may take its timeout (SMTP's ``TIMEOUT_SECONDS``) on each command of
        a push. The margin was 10 s at most (2 s on a 20 s lease): a push begun just before the
        deadline, to a relay answering in 3.5 s, outlived the lease, and another worker sent its
        message again. A batch takes well under a second at the worker's usual rate; what is
        not started by half the lease is requeued at once."""
        return claimed_at + timedelta(seconds=self.options.lease_seconds / 2)

    def _deliver(
        self, work: list[tuple[ClaimedMessage, Outgoing]], deadline: datetime
    ) -> tuple[list[Result], int]:
        """Push every message; with ``concurrency`` N the batch is dealt into N slices, each sent
        on its own connection(s) in its own thread (SMTP is one message at a time per
        connection, so parallel connections are what raises throughput to a relay)."""
        if self._pool is None or len(work) < 2:
            return self._deliver_slice(work, deadline)
        n = self.options.concurrency
        slices = [work[i::n] for i in range(n)]
        results: list[Result] = []
        accepted = 0
        for part, part_accepted in self._pool.map(self._deliver_slice, slices, [deadline] * n):
            results += part
            accepted = _add_accepted(accepted, part_accepted)
        return results, accepted

    def _deliver_slice(
        self, work: list[tuple[ClaimedMessage, Outgoing]], deadline: datetime
    ) -> tuple[list[Result], int]:
        """Sends one slice on its own transport connection(s), committing outcomes in small chunks
        as it goes (see ``WorkerOptions.record_every``) on one database connection. Returns the
        results and how many the store accepted."""
        with self.store.recorder() as record:
            return self._deliver_and_record(work, deadline, record)

    def _deliver_and_record(
        self,
        work: list[tuple[ClaimedMessage, Outgoing]],
        deadline: datetime,
        record: Callable[[Sequence[Result], datetime], int],
    ) -> tuple[list[Result], int]:
        messengers: dict[str, Messenger] = {}
        results: list[Result] = []
        unrecorded = 0
        accepted = 0
        last_record = time.monotonic()

        def flush() -> None:
            nonlocal unrecorded, accepted, last_record
            if unrecorded:
                chunk = results[-unrecorded:]
                accepted = _add_accepted(accepted, record(chunk, self.clock()))
                unrecorded = 0
            last_record = time.monotonic()

        try:
            for message, outgoing in work:
                now = self.clock()
                if now >= deadline:
                    # Not sent: back to the queue as it was, for whichever worker claims it next.
                    results.append(Result(message, "scheduled", at=now, untried=True))
                    unrecorded += 1
                    continue
                channel = "email" if isinstance(outgoing, Email) else "sms"
                messenger = messengers.get(channel)
                if messenger is None:
                    messenger = messengers[channel] = self.open_messenger(channel)
                results.append(self._result(message, _push(messenger, outgoing), self.clock()))
                unrecorded += 1
                if (
                    unrecorded >= self.options.record_every
                    or time.monotonic() - last_record >= RECORD_SECONDS
                ):
                    flush()
        finally:
            for messenger in messengers.values():
                messenger.close()
        flush()
        return results, accepted

    def _result(self, message: ClaimedMessage, outcome: Outcome, at: datetime) -> Result:
        if isinstance(outcome, Delivered):
            return Result(message, "sent", at=at, provider_id=outcome.provider_id[:200] or None)
        if isinstance(outcome, Rejected):
            return Result(message, "failed", at=at, error=outcome.reason, bounce=outcome.bounce)
        if message.attempt >= self.options.max_attempts:
            reason = f"gave up after {message.attempt} attempts: {outcome.reason}"
            return Result(message, "failed", at=at, error=short(reason))
        return Result(
            message,
            "scheduled",
            at=at,
            error=outcome.reason,
            retry_at=at + timedelta(seconds=self.backoff_seconds(message.attempt)),
            metadata={
                # The first schedule is kept: lateness and reports refer to it, not to the retry.
                "first_scheduled_at": isoformat_z(message.scheduled_at),
                **message.metadata,
            },
        )

    def backoff_seconds(self, attempt: int) -> float:
        """``base * 2^(attempt-1)``: base, 2*base, 4*base, … capped at an hour."""
        delay = self.options.retry_base_seconds * 2.0 ** max(attempt - 1, 0)
        return min(delay, MAX_BACKOFF_SECONDS)


def _log_problems(results: list[Result]) -> None:
    """Why a batch's messages failed or will be retried, most frequent first: whoever runs the
    worker sees a refused connection or a wrong password without querying ``messages.error``."""
    reasons = Counter(r.error for r in results if r.error and _kind(r) in ("failed", "retried"))
    if reasons:
        log.warning(
            "batch problems: %s",
            "; ".join(f"{reason} (x{count})" for reason, count in reasons.most_common(3)),
        )


def _cause(exc: Exception) -> str:
    """An exception in one line: its class and the first line of its message."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _kind(result: Result) -> str:
    """How a result is counted: its status, except that back-to-``scheduled`` is a ``retried``
    transient failure, or ``requeued`` when it was never tried (the lease ran out first)."""
    if result.status != "scheduled":
        return result.status
    return "requeued" if result.untried else "retried"


def _compose(
    message: ClaimedMessage, context: BatchContext, senders: Senders, now: datetime
) -> Outgoing | Skip:
    """A message that cannot be composed (a bug, not its template's error) fails alone: raised
    out of the batch, it kept every message of the batch "sending" until the lease ran out, and
    then again, for ever."""
    try:
        return compose(message, context, senders, now)
    except Exception as exc:
        log.exception("could not compose %s", message.id)  # the details stay in the log
        return Skip("failed", f"could not compose the message ({type(exc).__name__}); see the log")


def _push(messenger: Messenger, outgoing: Outgoing) -> Outcome:
    """A transport that raises (a bug, not a provider answer) costs one attempt, not the worker."""
    try:
        return messenger.push(outgoing)
    except Exception as exc:
        log.exception("transport raised for %s", outgoing.message_id)
        return Deferred(short(f"internal error: {type(exc).__name__}: {exc}"))
