"""Delivery's entry points for the CLI and the web: a worker wired from settings, and unsubscribing."""

from __future__ import annotations

from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.audit.service import record_event
from tidings.auth import Principal
from tidings.config import Settings
from tidings.db import get_engine
from tidings.delivery.compose import Senders
from tidings.delivery.store import SqlStore
from tidings.delivery.suppress import add_suppressions
from tidings.delivery.tokens import UnsubscribeTarget
from tidings.delivery.transports import check_transport_url, is_local, open_messenger
from tidings.delivery.transports.base import Messenger
from tidings.delivery.transports.mime import message_id_domain
from tidings.delivery.worker import Worker, WorkerOptions
from tidings.models import Organization
from tidings.timeutil import utcnow


def build_worker(
    settings: Settings, *, batch_size: int | None = None, concurrency: int | None = None
) -> Worker:
    """A worker on the configured database and transports; a transport URL that cannot work is
    refused here (``TransportConfigError``), before anything is claimed."""
    check_transport_url(settings.email_transport, "email")
    check_transport_url(settings.sms_transport, "sms")
    batch_size = max(1, batch_size or settings.worker_batch_size)
    local = is_local(settings.email_transport) and is_local(settings.sms_transport)
    options = WorkerOptions(
        batch_size=batch_size,
        lease_seconds=settings.worker_lease_seconds,
        max_attempts=settings.worker_max_attempts,
        retry_base_seconds=settings.worker_retry_base_seconds,
        # An outbox on this machine is written by one thread, and its outcomes are committed
        # once per batch (or every RECORD_SECONDS): chunks bound re-sends after a crash, and a
        # file outbox cannot receive a message twice. Per batch, the PostgreSQL commits were a
        # third of a drain's time.
        concurrency=1 if local else max(1, concurrency or settings.worker_concurrency),
        record_every=batch_size if local else WorkerOptions.record_every,
        poll_seconds=settings.worker_poll_seconds,
    )
    return Worker(
        SqlStore(get_engine()),
        partial(_messenger_for, settings),
        Senders(email=settings.email_from, sms=settings.sms_from),
        options,
    )


def _messenger_for(settings: Settings, channel: str) -> Messenger:
    url = settings.email_transport if channel == "email" else settings.sms_transport
    return open_messenger(
        url,
        domain=message_id_domain(settings.public_url),
        sms_api_base_url=settings.sms_api_base_url,
    )


def unsubscribe(session: Session, target: UnsubscribeTarget) -> bool:
    """Put the token's address on its organization's suppression list (reason ``unsubscribe``).
    Idempotent. False when the organization no longer exists."""
    exists = session.scalar(select(Organization.id).where(Organization.id == target.org_id))
    if exists is None:
        return False
    added = add_suppressions(session, [(target.org_id, target.address)], "unsubscribe", utcnow())
    for suppression_id in added:
        record_event(
            session,
            Principal(org_id=target.org_id, actor_type="recipient", actor_id=None),
            "suppression.unsubscribed",
            target_type="suppression",
            target_id=suppression_id,
            data={"address": target.address, "reason": "unsubscribe"},
        )
    return True
