"""Outbound tasks: send the deliveries whose request could not reach SQS (the relay, like the outbox's)."""
from __future__ import annotations

from datetime import timedelta

from core.outbound import service as outbound
from core.platform import maintenance
from core.platform.queue import celery_app


@celery_app.task(name="zixly.fleet.relay_outbound", ignore_result=True)
def relay_all_outbound(min_age: float = outbound.RELAY_MIN_AGE.total_seconds()) -> dict:
    """Send every active tenant's unsent deliveries, oldest first per record, from this one task."""
    return maintenance.for_each_active_tenant(lambda: outbound.relay(min_age=timedelta(seconds=min_age)))
