"""Transactional outbox: a task is recorded in the same tenant transaction as the row that needs it, and
published after commit; if the broker is down the row waits for the relay. Nothing accepted is lost."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select

from core.models import OutboxMessage
from core.queue import celery_app
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
        with tenant_transaction() as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(sent)))
    return len(sent)


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
