"""The statements of a delivery, each one round trip: claim a batch of one subscription's due messages, settle one
attempt, settle a batch's 2xx answers, release what a batch did not try.

Invariant: a settle or release changes a message only while the claim that took it still holds it (status
`sending` and the attempt count the claim set), so a claim whose lease lapsed and was taken over cannot overwrite
its successor's outcome; each statement writes the outbox rows of the tasks it makes in the same statement.
"""
from __future__ import annotations

from sqlalchemy import Boolean, String, and_, bindparam, case, cast, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from core.events import recorder
from core.events.models import DELIVERED, PENDING, SENDING, Subscription, SubscriptionAttempt, SubscriptionMessage
from core.events.recorder import DELIVER_WEBHOOK
from core.platform.models import OutboxMessage


def _claim_statement():
    """Up to `limit` due messages of one subscription, claimed in one statement: the given message first (if it is
    still due), then that subscription's other due messages in creation order. Rows another claim is taking are
    skipped, not waited for."""
    messages, subs = SubscriptionMessage.__table__, Subscription.__table__
    now = func.now()
    given = bindparam("message_id", type_=messages.c.id.type)
    lease = now + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("lease", type_=messages.c.attempts.type))
    due = or_(and_(messages.c.status == PENDING, messages.c.next_attempt_at <= now),
              and_(messages.c.status == SENDING, messages.c.lease_until <= now))
    owner = select(messages.c.subscription_id).where(messages.c.id == given).scalar_subquery()
    # the partial index of undelivered messages finds them (a subscription's delivered history is not scanned)
    undelivered = messages.c.status.in_((PENDING, SENDING))
    picked = (select(messages.c.id).where(messages.c.subscription_id == owner, undelivered, due,
                                          or_(messages.c.id == given, bindparam("others", type_=Boolean)))
              .order_by((messages.c.id == given).desc(), messages.c.seq)
              .limit(bindparam("limit", type_=messages.c.attempts.type))
              .with_for_update(skip_locked=True).cte("picked"))
    claimed = (update(messages)
               .where(messages.c.id.in_(select(picked.c.id)), subs.c.id == messages.c.subscription_id,
                      subs.c.enabled.is_(True), subs.c.deleted_at.is_(None))
               .values(status=SENDING, attempts=messages.c.attempts + 1, lease_until=lease, updated_at=now)
               .returning(messages.c.id, messages.c.subscription_id, messages.c.event_type, messages.c.data,
                          messages.c.created_at, messages.c.attempts, messages.c.seq, subs.c.url,
                          subs.c.secrets_sealed, subs.c.failing_since)
               .cte("claimed"))
    return select(claimed.c.id, claimed.c.subscription_id, claimed.c.event_type, claimed.c.data,
                  claimed.c.created_at, claimed.c.attempts, claimed.c.url, claimed.c.secrets_sealed,
                  claimed.c.failing_since).order_by((claimed.c.id == given).desc(), claimed.c.seq)


def _release_statement():
    """Claimed messages not tried (the batch stopped early) back to pending as they were, each with a new task in
    the outbox in the same statement (their first task may already have found them claimed)."""
    messages, box = SubscriptionMessage.__table__, OutboxMessage.__table__
    ids = bindparam("b_ids", type_=ARRAY(messages.c.id.type))
    counts = bindparam("b_claimed_attempts", type_=ARRAY(messages.c.attempts.type))
    rows = func.unnest(ids, counts).table_valued("id", "claimed_attempts").render_derived("untried")
    released = (update(messages).where(messages.c.id == rows.c.id, messages.c.status == SENDING,
                                       messages.c.attempts == rows.c.claimed_attempts)
                .values(status=PENDING, attempts=messages.c.attempts - 1, lease_until=None, updated_at=func.now())
                .returning(messages.c.id).cte("released"))
    queued = (insert(box).from_select(["task", "args", "countdown"], select(
        literal(DELIVER_WEBHOOK), func.jsonb_build_array(cast(released.c.id, String)), literal(0.0)
    ).select_from(released)).returning(box.c.id, box.c.args).cte("queued"))
    return select(recorder.outbox_rows(queued).label("queued"))


def _settle_delivered_statement():
    """The 2xx answers of one batch (one subscription) in one statement: each attempt logged, each message
    delivered (if its claim still holds it), the subscription's failure record cleared only if it has one."""
    messages, subs, attempts = SubscriptionMessage.__table__, Subscription.__table__, SubscriptionAttempt.__table__
    arrays = {name: bindparam(f"b_{name}", type_=ARRAY(kind)) for name, kind in (
        ("ids", messages.c.id.type), ("claimed_attempts", messages.c.attempts.type),
        ("codes", attempts.c.status_code.type), ("durations", attempts.c.duration_ms.type),
        ("bodies", attempts.c.response_body.type), ("event_types", attempts.c.event_type.type))}
    subscription = bindparam("b_subscription_id", type_=subs.c.id.type)
    rows = func.unnest(*arrays.values()).table_valued(
        "id", "claimed_attempts", "code", "duration_ms", "body", "event_type").render_derived("answered")
    logged = insert(attempts).from_select(
        ["subscription_id", "message_id", "event_type", "outcome", "status_code", "duration_ms", "response_body"],
        select(subscription, rows.c.id, rows.c.event_type, literal(DELIVERED), rows.c.code, rows.c.duration_ms,
               rows.c.body)).returning(attempts.c.id).cte("logged")
    now = func.now()
    settled = (update(messages).where(messages.c.id == rows.c.id, messages.c.status == SENDING,
                                      messages.c.attempts == rows.c.claimed_attempts)
               .values(status=DELIVERED, lease_until=None, response_status=rows.c.code, last_error=None,
                       updated_at=now, delivered_at=now)
               .returning(messages.c.id).cte("settled"))
    marked = (update(subs).where(subs.c.id == subscription, or_(subs.c.consecutive_failures > 0,
                                                              subs.c.failing_since.is_not(None)))
              .values(consecutive_failures=0, failing_since=None).returning(subs.c.id).cte("marked"))
    return select(select(func.count()).select_from(logged).scalar_subquery().label("logged"),
                  select(func.count()).select_from(settled).scalar_subquery().label("settled"),
                  select(func.count()).select_from(marked).scalar_subquery().label("marked"))


def _settle_statement():
    """In one statement: the attempt logged; the message settled (if this claim still holds it) and, when it is to
    be retried soon, its next task in the outbox; the subscription's failure record updated only when it changes
    (a healthy endpoint's row is never written, so concurrent deliveries do not queue on it)."""
    messages, subs, attempts, box = (SubscriptionMessage.__table__, Subscription.__table__,
                                     SubscriptionAttempt.__table__, OutboxMessage.__table__)
    p = {name: bindparam(f"p_{name}", type_=kind) for name, kind in (
        ("id", messages.c.id.type), ("subscription_id", subs.c.id.type), ("claimed_attempts", messages.c.attempts.type),
        ("status", messages.c.status.type), ("outcome", attempts.c.outcome.type), ("code", attempts.c.status_code.type),
        ("duration_ms", attempts.c.duration_ms.type), ("error", attempts.c.error.type),
        ("body", attempts.c.response_body.type), ("event_type", attempts.c.event_type.type),
        ("delay", box.c.countdown.type), ("countdown", box.c.countdown.type), ("ok", subs.c.enabled.type),
        ("gave_up", subs.c.enabled.type), ("requeue", subs.c.enabled.type), ("endpoint", subs.c.enabled.type))}
    now = func.now()
    logged = insert(attempts).values(
        subscription_id=p["subscription_id"], message_id=p["id"], event_type=p["event_type"], outcome=p["outcome"],
        status_code=p["code"], duration_ms=p["duration_ms"], error=p["error"], response_body=p["body"],
    ).returning(attempts.c.id).cte("logged")
    next_at = func.coalesce(now + func.make_interval(0, 0, 0, 0, 0, 0, p["delay"]), messages.c.next_attempt_at)
    settled = (update(messages).where(messages.c.id == p["id"], messages.c.status == SENDING,
                                      messages.c.attempts == p["claimed_attempts"])
               .values(status=p["status"], next_attempt_at=next_at, lease_until=None, response_status=p["code"],
                       last_error=p["error"], updated_at=now,
                       delivered_at=case((p["status"] == DELIVERED, now), else_=messages.c.delivered_at))
               .returning(messages.c.id).cte("settled"))
    queued = (insert(box).from_select(["task", "args", "countdown"], select(
        literal(DELIVER_WEBHOOK), func.jsonb_build_array(cast(settled.c.id, String)), p["countdown"]
    ).select_from(settled).where(p["requeue"])).returning(box.c.id, box.c.args).cte("queued"))
    changes = case((p["ok"], or_(subs.c.consecutive_failures > 0, subs.c.failing_since.is_not(None))),
                   else_=or_(p["gave_up"], subs.c.failing_since.is_(None)))
    marked = (update(subs).where(subs.c.id == p["subscription_id"], p["endpoint"], changes).values(
        consecutive_failures=case((p["ok"], 0), (p["gave_up"], subs.c.consecutive_failures + 1),
                                  else_=subs.c.consecutive_failures),
        failing_since=case((p["ok"], None), else_=func.coalesce(subs.c.failing_since, now)))
        .returning(subs.c.consecutive_failures).cte("marked"))
    return select(
        select(func.count()).select_from(logged).scalar_subquery().label("logged"),
        select(func.count()).select_from(settled).scalar_subquery().label("settled"),
        recorder.outbox_rows(queued).label("queued"),
        select(marked.c.consecutive_failures).scalar_subquery().label("consecutive_failures"))


CLAIM, SETTLE = _claim_statement(), _settle_statement()
RELEASE, SETTLE_DELIVERED = _release_statement(), _settle_delivered_statement()
