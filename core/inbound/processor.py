"""The inbox processor: turns kept raw deliveries (core.inbound.raw_inbox) into events and jobs, in batches.

Invariant: a raw row is deleted in the transaction that creates its events, jobs and their outbox messages, so
each delivery is fanned out exactly once, whoever runs it and however often: rows are claimed with
`FOR UPDATE SKIP LOCKED` (processors side by side take different rows), a processor that dies before its commit
leaves its rows for the next one, and the events' own de-duplication (provider + event id) makes a delivery the
provider sent twice start nothing twice. The tasks are published once per batch, after its commit (the outbox
relay sends them if the broker is away). A row that cannot be fanned out (its events break a constraint) is
marked with the error and set aside, so it never blocks the rows behind it; a transient error (the database or
the broker away) sets nothing aside: the whole batch stays for the next run.
"""
from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select, update

from connectors.base import WebhookEvent
from core.inbound import inbox
from core.inbound.models import RawDelivery
from core.platform import metrics, outbox
from core.platform.models import OutboxMessage
from core.platform.transient import TRANSIENT_ERRORS
from tenancy.db import tenant_transaction

log = logging.getLogger("zixly.inbox")
BATCH = 200
_CLAIM = (select(RawDelivery).where(RawDelivery.error.is_(None)).order_by(RawDelivery.id)
          .with_for_update(skip_locked=True))


def process_pending(*, batch: int = BATCH) -> int:
    """Fan out the current tenant's kept deliveries, a batch per transaction, until none is left that another
    processor does not hold; the number fanned out here."""
    done = 0
    while True:
        count = _process_batch(batch)
        done += count
        if count < batch:
            return done


def _process_batch(batch: int) -> int:
    try:
        with tenant_transaction() as session:
            rows = list(session.scalars(_CLAIM.limit(batch)))
            messages = _fan_out(session, rows)
            if rows:
                session.execute(delete(RawDelivery).where(RawDelivery.id.in_([row.id for row in rows])))
    except TRANSIENT_ERRORS:  # the database or broker is away: every row stays for the next run
        raise
    except Exception as exc:  # one row's events may break a constraint: find it, set it aside, keep the rest
        log.warning("an inbox batch failed (%s); fanning out its rows one by one", exc)
        return _one_by_one(batch)
    outbox.publish(messages)
    _observe(rows)
    return len(rows)


def _fan_out(session, rows: list[RawDelivery]) -> list[OutboxMessage]:
    """Create each row's events and jobs in the caller's transaction (inbox.add_events, the one place events are
    created); the outbox messages to publish after commit."""
    messages, connection = [], session.connection()  # Core statements in the session's transaction
    workflows = inbox.workflows_in_force(connection) if rows else None
    for row in rows:
        events = [WebhookEvent(**event) for event in row.events]
        results, added = inbox.add_events(connection, provider=row.provider, connection_id=row.connection_id,
                                          events=events, headers=row.headers, raw_body=row.raw_body,
                                          workflows=workflows)
        for message in added:  # admitted under the request that kept the delivery (core.platform.outbox)
            message.request_id = row.request_id
        messages += added
        duplicates = sum(1 for r in results if r.duplicate)
        if duplicates:
            metrics.events_deduplicated.labels(row.provider).inc(duplicates)
        if len(results) < len(events):  # the connection was removed after the delivery was routed to it
            metrics.webhooks_unrouted.labels(row.provider).inc(len(events) - len(results))
    return messages


def _one_by_one(batch: int) -> int:
    """Each row in its own transaction; a row whose fan-out fails is marked with the error (in a savepoint's
    place, while still locked by this transaction) and skipped by every later claim."""
    done = 0
    for _ in range(batch):
        with tenant_transaction() as session:
            row = session.scalars(_CLAIM.limit(1)).first()
            if row is None:
                break
            try:
                with session.begin_nested():
                    messages = _fan_out(session, [row])
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                session.execute(update(RawDelivery).where(RawDelivery.id == row.id)
                                .values(error=f"{type(exc).__name__}: {exc}"[:2000]))
                metrics.inbox_set_aside.labels(row.provider).inc()
                log.error("raw delivery %s set aside: %s", row.id, exc)
                continue
            session.execute(delete(RawDelivery).where(RawDelivery.id == row.id))
        outbox.publish(messages)
        _observe([row])
        done += 1
    return done


def _observe(rows: list[RawDelivery]) -> None:
    if not rows:
        return
    metrics.inbox_processed.inc(len(rows))
    now = time.time()
    for row in rows:
        metrics.inbox_lag.observe(max(0.0, now - row.received_at.timestamp()))
