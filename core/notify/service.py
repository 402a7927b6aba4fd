"""Notifications: recorded by domain code, sent by a worker — never on the hot path.

`notify()` writes the log row (status `queued`, with the exact Novu request) and an outbox message in one
tenant transaction, and publishes the message after commit; if the broker is down the outbox relay publishes it
later, so a recorded notification is never lost. `deliver()` runs in a worker: it sends the stored request,
and a Novu outage is retried with backoff through the outbox, with the same transactionId on every attempt.
"""
from __future__ import annotations

import functools
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from core.notify import settings as notify_settings
from core.notify.models import Notification
from core.platform import metrics, outbox
from core.platform.errors import NotFound
from core.platform.ids import get_by_id, parse_uuid
from core.platform.pages import between, matching, newest_first
from core.platform.runtime import settings
from notifications import novu
from tenancy.context import current_tenant
from tenancy.db import tenant_session, tenant_transaction

log = logging.getLogger("zixly.notify")
SEND_NOTIFICATION = "zixly.tenant.send_notification"
QUEUED, SENT, FAILED, SKIPPED = "queued", "sent", "failed", "skipped"
STATUSES = (QUEUED, SENT, FAILED, SKIPPED)
# Backoff between attempts: RETRY_BASE * 2^(n-1), at most RETRY_MAX (kept well under the broker's visibility
# timeout, or Redis would hand a waiting task to a second worker), ±25 % jitter.
RETRY_BASE = 5.0
RETRY_MAX = 600.0
# A notification still `queued` this long after its last change has lost its task (a broker that lost its data,
# or a task refused while the tenant was suspended): longer than any backoff wait, so nothing due is re-sent.
STALE_AFTER = timedelta(minutes=15)


class NotificationNotFound(NotFound):
    code = "notification-not-found"


def notify(*, event: str, subject: str, payload: dict, to: list[dict] | None = None) -> uuid.UUID | None:
    """Record one notification for the current tenant and queue it; None if this one was recorded before.

    `to` None means: whoever the tenant's notification settings name for `event`. With nobody to tell, the
    notification is logged as `skipped` with the reason, so the log still explains what happened.
    """
    tenant = current_tenant()
    txn = novu.transaction_id(f"{tenant.id}:{tenant.slug}", event, subject)
    message = None
    admin_email = notify_settings.admin_email(tenant.slug) if to is None else None  # before the transaction
    with tenant_transaction() as session:
        if to is None:
            to, reason = notify_settings.recipients(session, event=event, tenant=tenant.slug,
                                                    admin_email=admin_email)
        else:
            reason = None if to else "no recipients"
        request = novu.trigger_request(workflow=event, tenant=tenant.slug, to=to, payload=payload,
                                       transaction_id=txn)
        status = QUEUED if reason is None else SKIPPED
        ident = session.scalar(insert(Notification).values(
            id=uuid.uuid4(), event=event, subject=subject[:300], transaction_id=txn, status=status,
            request=request, attempts=0, error=reason,
        ).on_conflict_do_nothing(index_elements=[Notification.transaction_id]).returning(Notification.id))
        if ident is not None and status == QUEUED:
            message = outbox.enqueue(session, SEND_NOTIFICATION, str(ident))
    if ident is None:
        log.info("notification %s for %s was already recorded", event, subject)
    else:
        metrics.notifications.labels(status).inc()
    if message is not None:
        outbox.publish([message])
    return ident


def backoff(attempt: int) -> float:
    return min(RETRY_MAX, RETRY_BASE * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)


@functools.lru_cache(maxsize=4)
def _client(api_key: str, server_url: str, timeout: float) -> novu.NovuClient:
    return novu.NovuClient(api_key=api_key, server_url=server_url, timeout=timeout)


def deliver(notification_id) -> str:
    """Send one queued notification (worker side); return its status afterwards."""
    ident = _parse_id(notification_id)
    with tenant_session() as session:
        found = session.get(Notification, ident)
    if found is None or found.status != QUEUED:  # sent, skipped or failed: never sent again
        return found.status if found else "missing"
    config = settings()
    if not config.novu_api_key:
        return _settle(ident, found.attempts, SKIPPED, "NOVU_API_KEY is not set: not sent; `request` is what "
                                                       "Novu would have received")
    attempt = found.attempts + 1
    client = _client(config.novu_api_key, config.novu_server_url, config.novu_timeout)
    try:
        client.trigger(found.request, idempotency_key=f"{found.transaction_id}-{attempt}")
    except novu.NovuUnavailable as exc:
        return _retry_later(ident, attempt, str(exc), max_attempts=config.novu_max_attempts)
    except novu.NovuRejected as exc:
        return _settle(ident, attempt, FAILED, str(exc))
    return _settle(ident, attempt, SENT)


def _settle(ident: uuid.UUID, attempt: int, status: str, error: str | None = None) -> str:
    with tenant_transaction() as session:
        row = session.get(Notification, ident, with_for_update=True)
        if row.status != QUEUED:  # a duplicate delivery settled it first
            return row.status
        row.status, row.attempts, row.error = status, max(row.attempts, attempt), error
        if status == SENT:
            row.sent_at = datetime.now(UTC)
    metrics.notifications.labels(status).inc()
    return status


def _retry_later(ident: uuid.UUID, attempt: int, error: str, *, max_attempts: int) -> str:
    message = None
    with tenant_transaction() as session:
        row = session.get(Notification, ident, with_for_update=True)
        if row.status != QUEUED or row.attempts >= attempt:  # settled, or a duplicate delivery counted this one
            return row.status
        row.attempts, row.error = attempt, error
        if attempt >= max_attempts:
            row.status, row.error = FAILED, f"gave up after {attempt} attempts; last: {error}"
        else:
            message = outbox.enqueue(session, SEND_NOTIFICATION, str(ident), countdown=backoff(attempt))
        status = row.status
    metrics.notifications.labels("retried" if status == QUEUED else status).inc()
    if message is not None:
        outbox.publish([message])
    log.warning("notification %s attempt %d failed (%s): %s", ident, attempt, status, error)
    return status


def requeue_stale(*, older_than: timedelta = STALE_AFTER, limit: int = 500) -> int:
    """Queue again the current tenant's notifications that lost their task; a resend that did reach Novu before
    is deduplicated by its transactionId."""
    cutoff = datetime.now(UTC) - older_than
    with tenant_transaction() as session:
        ids = list(session.scalars(select(Notification.id).where(
            Notification.status == QUEUED, Notification.updated_at < cutoff).limit(limit).with_for_update(
            skip_locked=True)))
        if ids:
            session.execute(update(Notification).where(Notification.id.in_(ids)).values(updated_at=func.now()))
        messages = [outbox.enqueue(session, SEND_NOTIFICATION, str(ident)) for ident in ids]
    outbox.publish(messages)
    return len(ids)


def _parse_id(notification_id) -> uuid.UUID:
    return parse_uuid(notification_id, NotificationNotFound, f"no notification {notification_id}")


def get_notification(notification_id) -> Notification:
    return get_by_id(Notification, notification_id, NotificationNotFound, f"no notification {notification_id}")


def list_notifications(*, limit: int, before: tuple | None = None, status=None, event=None,
                       created_after=None, created_before=None) -> list[Notification]:
    query = between(matching(select(Notification), (Notification.status, status), (Notification.event, event)),
                    Notification.created_at, created_after, created_before)
    query = newest_first(query, Notification.created_at, Notification.id, limit=limit, before=before)
    with tenant_session() as session:
        return list(session.scalars(query))
