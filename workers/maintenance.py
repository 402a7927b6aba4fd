"""Housekeeping tasks: a fleet task fans out one tenant task per active tenant."""
from __future__ import annotations

from core.inbound import polling
from core.lifecycle import retention
from core.platform import maintenance
from core.platform.queue import celery_app
from core.tenants import service as tenants


@celery_app.task(name="zixly.fleet.prune_idempotency_records")
def fan_out_prune() -> dict:
    """Publish one prune task per active tenant (each carries its tenant); return {slug: task id}."""
    return maintenance.for_each_active_tenant(lambda: prune_idempotency_records.delay().id)


@celery_app.task(name="zixly.tenant.prune_idempotency_records", bind=True, max_retries=3)
def prune_idempotency_records(self) -> int:
    return maintenance.prune_idempotency_records()


@celery_app.task(name="zixly.fleet.enforce_retention")
def fan_out_retention() -> dict:
    """Publish one retention task per active tenant (each carries its tenant, so tenants run in parallel)."""
    return maintenance.for_each_active_tenant(lambda: enforce_retention.delay().id)


@celery_app.task(name="zixly.tenant.enforce_retention", ignore_result=True)
def enforce_retention() -> dict:
    """Delete what the tenant's plan no longer keeps, in batches (core.lifecycle.retention)."""
    return retention.enforce_retention()


@celery_app.task(name="zixly.tenant.audit_summary")
def audit_summary() -> dict:
    """What a worker sees of the current tenant: its slug and audit log size (used by ops and tests)."""
    return maintenance.audit_summary()


@celery_app.task(name="zixly.fleet.refill_schema_pool")
def refill_schema_pool(shard: str | None = None) -> dict:
    """Top up the pool of ready tenant schemas (beat, and after a sign-up leaves a shard's pool low)."""
    return tenants.refill_schema_pool(shard)


@celery_app.task(name="zixly.fleet.schedule_polls")
def schedule_polls() -> dict:
    """Start the scheduled (polling) workflows that are due, tenant by tenant; return {slug: jobs started}.
    Each tenant's next run carries its own jitter, so the fleet's polls spread over the period."""
    started = maintenance.for_each_active_tenant(polling.schedule_due)
    return {slug: n for slug, n in started.items() if n}
