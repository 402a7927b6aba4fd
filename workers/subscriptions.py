"""Subscription tasks: deliver one message, replay messages in creation order, sweep stranded messages (fleet,
with the delivery-lag gauge), prune what is past its retention (fleet). Deliveries have their own queue
(core.platform.queue) so a slow endpoint never queues ahead of jobs."""
from __future__ import annotations

from core.platform import maintenance, metrics
from core.platform.queue import celery_app
from core.platform.runtime import redis_client
from core.platform.transient import TRANSIENT_ERRORS
from core.subscriptions import delivery, sweeper
from core.subscriptions.service import REPLAY_WEBHOOKS

# Losing the database or broker around an attempt is retried as a task (the message is still claimable: its lease
# lapses); the endpoint's own failures are the schedule's business (core.subscriptions.delivery).
_RETRY = dict(autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=60, max_retries=20)


@celery_app.task(name=delivery.DELIVER_WEBHOOK, ignore_result=True, **_RETRY)
def deliver_webhook(message_id: str) -> str:
    return delivery.deliver(message_id)


@celery_app.task(name=REPLAY_WEBHOOKS, ignore_result=True, **_RETRY)
def replay_webhooks(message_ids: list[str]) -> list[str]:
    return delivery.deliver_in_order(message_ids)


@celery_app.task(name="zixly.fleet.sweep_webhooks", ignore_result=True)
def sweep_webhooks() -> dict:
    """Every tenant's stranded messages re-sent; the fleet's longest delivery lag left for the metrics scrape."""
    swept = maintenance.for_each_active_tenant(lambda: (sweeper.sweep_stranded(), sweeper.oldest_overdue_seconds()))
    lag = max((seconds for _, seconds in swept.values()), default=0.0)
    redis_client().set(metrics.WEBHOOK_OLDEST_KEY, lag, ex=180)
    return {slug: count for slug, (count, _) in swept.items() if count}


@celery_app.task(name="zixly.fleet.prune_webhooks", ignore_result=True)
def prune_webhooks() -> dict:
    """Every tenant's settled messages older than the retention (core.subscriptions.sweeper.RETENTION) deleted."""
    pruned = maintenance.for_each_active_tenant(sweeper.prune)
    return {slug: n for slug, n in pruned.items() if n}
