"""Messages whose task was lost (a broker that lost its data, a worker that died holding one, a wait longer than a
task may be scheduled ahead) are sent by the sweeper: every message due for longer than OVERDUE — pending past
its `next_attempt_at`, or `sending` past its lease — of an enabled subscription gets a new task, through the
outbox in the statement that marks it (its due time moves to now, so the next sweep leaves it for OVERDUE more).

It also measures the delivery lag the alert watches (how long the most overdue message has been waiting), and
prunes what is past keeping: messages delivered or failed longer than RETENTION ago, with their attempts.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import String, and_, case, cast, delete, func, literal, or_, select, update

from core.events.models import DELIVERED, FAILED, PENDING, SENDING, Subscription, SubscriptionMessage
from core.events.recorder import DELIVER_WEBHOOK
from core.platform import outbox
from core.platform.models import OutboxMessage
from tenancy.db import tenant_session, tenant_transaction

OVERDUE = timedelta(seconds=60)
RETENTION = timedelta(days=30)  # the attempt log and what a replay can recover


def _due_at():
    messages = SubscriptionMessage.__table__
    return case((messages.c.status == SENDING, messages.c.lease_until), else_=messages.c.next_attempt_at)


def _overdue(cutoff):
    messages = SubscriptionMessage.__table__
    return or_(and_(messages.c.status == PENDING, messages.c.next_attempt_at <= cutoff),
               and_(messages.c.status == SENDING, messages.c.lease_until <= cutoff))


def _live(query):
    messages, subs = SubscriptionMessage.__table__, Subscription.__table__
    return query.join(subs, subs.c.id == messages.c.subscription_id).where(subs.c.enabled.is_(True),
                                                                          subs.c.deleted_at.is_(None))


def sweep_stranded(*, overdue: timedelta = OVERDUE, limit: int = 500) -> int:
    """Give the current tenant's overdue messages a new task; answers how many."""
    messages, box = SubscriptionMessage.__table__, OutboxMessage.__table__
    stranded = (_live(select(messages.c.id).select_from(messages)).where(_overdue(func.now() - overdue))
                .order_by(_due_at()).limit(limit).with_for_update(of=messages, skip_locked=True).cte("stranded"))
    marked = (update(messages).where(messages.c.id.in_(select(stranded.c.id)), messages.c.status == PENDING)
              .values(next_attempt_at=func.now()).returning(messages.c.id).cte("marked"))
    queued = (box.insert().from_select(["task", "args", "countdown"], select(
        literal(DELIVER_WEBHOOK), func.jsonb_build_array(cast(stranded.c.id, String)), literal(0.0))
        .select_from(stranded)).returning(box.c.id, box.c.args).add_cte(marked))
    with tenant_transaction() as session:
        rows = session.execute(queued).all()
    outbox.publish([OutboxMessage(id=i, task=DELIVER_WEBHOOK, args=a, countdown=0.0) for i, a in rows])
    return len(rows)


def oldest_overdue_seconds() -> float:
    """How long the current tenant's most overdue message (of an enabled subscription) has waited past its due
    time; 0 when none is waiting."""
    messages = SubscriptionMessage.__table__
    waited = func.extract("epoch", func.now() - func.min(_due_at()))
    query = _live(select(func.coalesce(waited, 0.0)).select_from(messages)).where(_overdue(func.now()))
    with tenant_session() as session:
        return float(session.scalar(query) or 0.0)


def prune(*, older_than: timedelta = RETENTION, limit: int = 5000) -> int:
    """Delete the current tenant's settled messages (and, by cascade, their attempts) last changed longer than
    `older_than` ago, at most `limit` per call; answers how many."""
    messages = SubscriptionMessage.__table__
    old = (select(messages.c.id).where(messages.c.status.in_((DELIVERED, FAILED)),
                                       messages.c.updated_at < func.now() - older_than).limit(limit))
    with tenant_transaction() as session:
        return session.execute(delete(messages).where(messages.c.id.in_(old.scalar_subquery()))).rowcount
