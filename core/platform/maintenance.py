"""Tenant housekeeping, run by workers."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select

from core.platform.models import AuditEntry, TenantIdempotencyRecord
from core.platform.runtime import settings
from tenancy.apikeys import tenant_ref
from tenancy.context import current_tenant, tenant_context
from tenancy.db import catalog_session, tenant_session, tenant_transaction
from tenancy.models import Tenant


def active_tenants() -> list:
    """The routing record (tenancy.context.TenantRef) of every active tenant."""
    with catalog_session() as session:
        return [tenant_ref(t) for t in session.scalars(select(Tenant).where(Tenant.status == "active"))]


def for_each_active_tenant(fn) -> dict:
    """Call fn() inside each active tenant's context; return {slug: fn's result}."""
    results = {}
    for tenant in active_tenants():
        with tenant_context(tenant):
            results[tenant.slug] = fn()
    return results


def prune_idempotency_records() -> int:
    cutoff = datetime.now(UTC) - timedelta(hours=settings().idempotency_ttl_hours)
    with tenant_transaction() as session:
        result = session.execute(delete(TenantIdempotencyRecord).where(TenantIdempotencyRecord.created_at < cutoff))
    return result.rowcount


def audit_summary() -> dict:
    with tenant_session() as session:
        count = session.scalar(select(func.count()).select_from(AuditEntry))
        actions = sorted(set(session.scalars(select(AuditEntry.target_id).distinct())))
    return {"tenant": current_tenant().slug, "audit_entries": count, "targets": actions}
