"""Transactional outbox: a task is recorded in the same tenant transaction as the row that needs it, and
published after commit; if the broker is down the row waits for the relay. Nothing accepted is lost."""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from core.platform.models import OutboxMessage
from core.platform.queue import celery_app
from tenancy.context import TenantRef, current_tenant, tenant_context
from tenancy.db import tenant_transaction

log = logging.getLogger("zixly.outbox")
# After a failed publish, requests skip publishing for a while (the relay catches up), so an outage costs
# each request nothing instead of a connection timeout.
BREAKER_SECONDS = 5.0
# The relay leaves fresh rows to the request that wrote them, so one message is not published twice.
RELAY_MIN_AGE = timedelta(seconds=30)
_broker_down_until = 0.0


def enqueue(session, task: str, *args, countdown: float = 0.0) -> OutboxMessage:
    message = OutboxMessage(task=task, args=list(args), countdown=countdown)
    session.add(message)
    return message


def _send(message: OutboxMessage) -> None:
    celery_app.send_task(message.task, args=message.args, countdown=message.countdown or None, retry=False,
                         ignore_result=True)


def publish(messages: list[OutboxMessage]) -> int:
    """Publish just-committed messages, then delete them; on a broker error leave the rest for the relay."""
    global _broker_down_until
    if not messages or time.monotonic() < _broker_down_until:
        return 0
    sent = []
    for message in messages:
        try:
            _send(message)
        except Exception as exc:  # broker down: the relay publishes the rest later
            _broker_down_until = time.monotonic() + BREAKER_SECONDS
            log.warning("outbox publish failed; %d message(s) left for the relay: %s", len(messages) - len(sent), exc)
            break
        sent.append(message.id)
    if sent:
        _published.add(current_tenant(), sent)
    return len(sent)


class _Published:
    """Published messages whose rows are still to be deleted: deleted in batches by one thread per process,
    every FLUSH_SECONDS, instead of one more transaction per request. A row left behind (the process died
    first) is published again by the relay after RELAY_MIN_AGE; the task is idempotent (core.execution claims
    a job only while it is QUEUED or RUNNING), so that costs a no-op task, not a second effect."""

    FLUSH_SECONDS = 0.2

    def __init__(self):
        self._lock = threading.Lock()
        self._ids: dict[TenantRef, list[int]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, tenant: TenantRef, ids: list[int]) -> None:
        with self._lock:
            self._ids.setdefault(tenant, []).extend(ids)
            if self._pid != os.getpid():  # first use in this process (or a forked child): start its thread
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="outbox-sweeper", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.FLUSH_SECONDS)
            self.flush()

    def flush(self) -> int:
        """Delete every published row noted so far (also called at exit and by tests); the number deleted."""
        with self._lock:
            batches, self._ids = self._ids, {}
        deleted = 0
        for tenant, ids in batches.items():
            try:
                with tenant_context(tenant), tenant_transaction() as session:
                    deleted += session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids))).rowcount
            except Exception as exc:  # the relay will publish these again, harmlessly
                log.warning("could not delete %d published outbox row(s) of %s: %s", len(ids), tenant.slug, exc)
        return deleted


_published = _Published()
flush_published = _published.flush
atexit.register(flush_published)


def relay(*, limit: int = 500, min_age: timedelta = RELAY_MIN_AGE) -> int:
    """Publish the current tenant's messages older than `min_age` (the ones a request could not publish)."""
    cutoff = datetime.now(timezone.utc) - min_age
    sent = 0
    with tenant_transaction() as session:
        query = (select(OutboxMessage).where(OutboxMessage.created_at <= cutoff).order_by(OutboxMessage.id)
                 .limit(limit).with_for_update(skip_locked=True))
        for message in session.scalars(query):
            _send(message)  # a broker error ends the run; the rows stay
            session.delete(message)
            sent += 1
    return sent
