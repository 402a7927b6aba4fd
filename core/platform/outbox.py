"""Transactional outbox for Celery tasks: a task is recorded in the same tenant transaction as the row that
needs it and published after commit (core.platform.publishing); if the broker is down the row waits for the
relay. Nothing accepted is lost. A job to run now is admitted to its tenant's turn (core.platform.fair_queue)
rather than sent as its own task; one with a countdown is sent as `run_job`, which admits it when due."""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from core.platform import fair_queue
from core.platform.logs import request_id_var
from core.platform.models import OutboxMessage
from core.platform.publishing import RELAY_MIN_AGE, Interrupted, Publisher
from core.platform.queue import celery_app
from tenancy.context import TenantRef, current_tenant, tenant_context
from tenancy.db import tenant_transaction

log = logging.getLogger("zixly.outbox")
__all__ = ["RELAY_MIN_AGE", "enqueue", "publish", "relay", "flush_published", "publisher"]


def enqueue(session, task: str, *args, countdown: float = 0.0) -> OutboxMessage:
    message = OutboxMessage(task=task, args=list(args), countdown=countdown)
    session.add(message)
    return message


def _send(message: OutboxMessage, producer=None) -> None:
    if message.task == fair_queue.RUN_JOB and not message.countdown:  # a job to run now waits for its turn
        request_id = getattr(message, "request_id", None)  # set when published apart from its request
        token = request_id_var.set(request_id) if request_id else None
        try:
            fair_queue.admit(message.args[0])
        finally:
            if token is not None:
                request_id_var.reset(token)
        return
    celery_app.send_task(message.task, args=message.args, countdown=message.countdown or None, retry=False,
                         ignore_result=True, producer=producer)


def _send_all(messages: list[OutboxMessage]) -> list[OutboxMessage]:
    """Send each message, all through one producer taken from the pool once (a batch is one checkout)."""
    sent = []
    try:
        with celery_app.producer_or_acquire() as producer:
            for message in messages:
                _send(message, producer)
                sent.append(message)
    except Exception as exc:  # broker down: the relay publishes the rest later
        raise Interrupted(sent, exc) from exc
    return sent


def _note_published(messages: list[OutboxMessage]) -> None:
    _published.add(current_tenant(), [m.id for m in messages])


publisher = Publisher("outbox", _send_all, on_sent=_note_published)


def publish(messages: list[OutboxMessage]) -> int:
    """Publish just-committed messages, then delete them; on a broker error leave the rest for the relay."""
    return len(publisher.after_commit(messages))


class _Published:
    """Published messages whose rows are still to be deleted: deleted in batches by one thread per process,
    every FLUSH_SECONDS, instead of one more transaction per request. A row left behind (the process died
    first) is published again by the relay after RELAY_MIN_AGE; the task is idempotent (core.execution claims
    a job only while no other run holds its lease), so that costs a no-op task, not a second effect."""

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
    with tenant_transaction() as session:
        query = (select(OutboxMessage).where(OutboxMessage.created_at <= cutoff).order_by(OutboxMessage.id)
                 .limit(limit).with_for_update(skip_locked=True))
        sent = publisher.send(list(session.scalars(query)))  # a broker error ends the run; the rest stay
        for message in sent:
            session.delete(message)
    return len(sent)
