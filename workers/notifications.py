"""Notification tasks: send one recorded notification through Novu (its own queue; see core.platform.queue)."""
from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError

from core.notify import service as notify
from core.platform import maintenance
from core.platform.queue import celery_app


# Novu outages are retried by core.notify through the outbox (with backoff, same transactionId); only losing
# the database mid-task is retried here, since the notification is still `queued` and safe to send again.
@celery_app.task(name=notify.SEND_NOTIFICATION, ignore_result=True, autoretry_for=(OperationalError, InterfaceError),
                 retry_backoff=2, retry_backoff_max=60, max_retries=20)
def send_notification(notification_id: str) -> str:
    return notify.deliver(notification_id)


@celery_app.task(name="zixly.fleet.requeue_stale_notifications", ignore_result=True)
def requeue_stale_notifications() -> dict:
    """Every tenant's notifications that lost their task (see core.notify.STALE_AFTER), queued again."""
    return maintenance.for_each_active_tenant(notify.requeue_stale)
