"""Transactional outbox: a task is recorded in the same tenant transaction as the row that needs it, and
published after commit; if the broker is down the row waits for the relay. Nothing accepted is lost."""
from __future__ import annotations

import logging

from sqlalchemy import delete, select

from core.models import OutboxMessage
from core.queue import celery_app
from tenancy.db import tenant_transaction

log = logging.getLogger("zixly.outbox")


def enqueue(session, task: str, *args, countdown: float = 0.0) -> OutboxMessage:
    message = OutboxMessage(task=task, args=list(args), countdown=countdown)
    session.add(message)
    return message


def publish(ids: list[int] | None = None, *, limit: int = 500) -> int:
    """Publish pending messages of the current tenant (these ids, or the oldest); return how many went out."""
    sent = 0
    with tenant_transaction() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id).limit(limit).with_for_update(skip_locked=True)
        if ids is not None:
            if not ids:
                return 0
            query = query.where(OutboxMessage.id.in_(ids))
        done = []
        for message in session.scalars(query):
            try:
                celery_app.send_task(message.task, args=message.args, countdown=message.countdown or None,
                                     retry=False)
            except Exception as exc:  # broker down: keep the rest for the relay
                log.warning("outbox publish failed, %d left for the relay: %s", len(ids or []) - sent, exc)
                break
            done.append(message.id)
            sent += 1
        if done:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(done)))
    return sent
