"""Deliveries as the API sees them: read, list (newest first), replay one or many (a new generation of the same
row, sent again after commit), and the relay that sends what a request could not (oldest first per record,
so a record's writes reach SQS in the order they were requested)."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, select, tuple_

from core.outbound import queues
from core.outbound.models import Delivery
from core.platform import audit
from core.platform.actors import Actor
from core.platform.errors import Conflict, Invalid, NotFound
from core.platform.ids import get_by_id, parse_uuid
from core.platform.pages import between, matching, newest_first
from core.platform.publishing import RELAY_MIN_AGE
from tenancy.db import tenant_session, tenant_transaction

STATUSES = ("queued", "sending", "delivered", "failed", "dead")
FINAL = ("delivered", "failed", "dead")
REPLAYABLE = ("failed", "dead")


class DeliveryNotFound(NotFound):
    code = "delivery-not-found"


class DeliveryNotReplayable(Conflict):
    code = "delivery-not-replayable"


def _now() -> datetime:
    return datetime.now(UTC)


def parse_delivery_id(value) -> uuid.UUID:
    return parse_uuid(value, DeliveryNotFound, f"no delivery {value}")


def get_delivery(delivery_id) -> Delivery:
    return get_by_id(Delivery, delivery_id, DeliveryNotFound, f"no delivery {delivery_id}")


def _filtered(query, *, status=None, provider=None, connection_id=None, job_id=None, queued_before=None):
    query = matching(query, (Delivery.status, status), (Delivery.provider, provider),
                     (Delivery.connection_id, connection_id), (Delivery.job_id, job_id))
    return between(query, Delivery.queued_at, until=queued_before)


def list_deliveries(*, limit: int, before: tuple | None = None, **filters) -> list[Delivery]:
    """Newest first; `before` is the (queued_at, id) of the last row of the previous page."""
    query = newest_first(_filtered(select(Delivery), **filters), Delivery.queued_at, Delivery.id, limit=limit,
                         before=before)
    with tenant_session() as session:
        return list(session.scalars(query))


def _requeue(row: Delivery) -> None:
    row.status, row.generation, row.replays, row.attempts = "queued", row.generation + 1, row.replays + 1, 0
    row.sent_at = row.delivered_at = None
    row.updated_at = _now()  # queued_at stays: when the write was first asked for


def replay_delivery(delivery_id, *, actor: Actor) -> Delivery:
    """Send a failed or dead delivery again, as a new message (a new generation) of the same row."""
    with tenant_transaction() as session:
        row = session.get(Delivery, parse_delivery_id(delivery_id), with_for_update=True)
        if row is None:
            raise DeliveryNotFound(f"no delivery {delivery_id}")
        if row.status not in REPLAYABLE:
            raise DeliveryNotReplayable(f"delivery is {row.status}; only failed or dead deliveries are replayed")
        previous = row.status
        _requeue(row)
        audit.record(session, actor=actor, action="delivery.replayed", target_type="delivery",
                     target_id=str(row.id), details={"was": previous, "generation": row.generation})
    queues.publisher.after_commit([row])
    return row


def replay_deliveries(*, actor: Actor, status=REPLAYABLE, provider=None, connection_id=None, before=None,
                      limit: int = 500, dry_run: bool = False) -> int:
    """Replay up to `limit` failed/dead deliveries matching the filter, oldest first; answer how many."""
    statuses = [s for s in ([status] if isinstance(status, str) else status) if s in REPLAYABLE]
    if not statuses:
        raise Invalid("only failed or dead deliveries can be replayed")
    filters = dict(status=statuses, provider=provider, connection_id=connection_id, queued_before=before)
    with tenant_transaction() as session:
        query = _filtered(select(Delivery), **filters).order_by(Delivery.queued_at, Delivery.id).limit(limit)
        rows = list(session.scalars(query.with_for_update(skip_locked=True)))
        if dry_run or not rows:
            return len(rows)
        for row in rows:
            _requeue(row)
        audit.record(session, actor=actor, action="delivery.bulk_replayed", target_type="delivery",
                     details={"count": len(rows), "status": statuses, "provider": provider,
                              "connection_id": str(connection_id) if connection_id else None,
                              "before": before.isoformat() if before else None,
                              "deliveries": [str(r.id) for r in rows[:100]]})
    queues.publisher.after_commit(rows)
    return len(rows)


def relay(*, limit: int = 500, min_age: timedelta = RELAY_MIN_AGE) -> int:
    """Send the current tenant's unsent deliveries: every group with a row older than `min_age`, oldest first,
    so a record's writes reach SQS in the order they were requested."""
    cutoff = _now() - min_age
    unsent = and_(Delivery.status == "queued", Delivery.sent_at.is_(None))
    stale_groups = select(Delivery.connection_id, Delivery.record_key).where(unsent, Delivery.queued_at <= cutoff)
    with tenant_transaction() as session:
        query = (select(Delivery).where(unsent, tuple_(Delivery.connection_id, Delivery.record_key).in_(stale_groups))
                 .order_by(Delivery.queued_at, Delivery.id).limit(limit).with_for_update(skip_locked=True))
        rows = list(session.scalars(query))
        sent = queues.publisher.send(rows)  # SQS still away: the rows stay for the next run (other tenants go on)
        for row in sent:
            row.sent_at = _now()
    return len(sent)
