"""Staff-side tenant lifecycle: provisioning and status changes, each written to the tenant's audit log."""
from __future__ import annotations

from core.platform import audit, signals
from core.platform.actors import Actor
from core.platform.queue import celery_app
from core.platform.runtime import settings
from tenancy import pool, provisioning, shards
from tenancy.apikeys import tenant_ref
from tenancy.context import tenant_context
from tenancy.db import get_router
from tenancy.models import Tenant


def _audit(tenant: Tenant, actor: Actor, action: str, **details) -> None:
    with tenant_context(tenant_ref(tenant)):
        audit.record_now(actor=actor, action=action, target_type="tenant", target_id=tenant.slug,
                         details=details)


def create_tenant(*, slug: str, name: str, plan: str, actor: Actor, shard: str | None = None,
                  admin_email: str | None = None):
    tenant, key, secret = provisioning.create_tenant(
        get_router(), slug=slug, name=name, plan=plan, shard=shard, admin_email=admin_email,
        created_by=f"{actor.type}:{actor.id}", on_pool_low=request_pool_refill)
    _audit(tenant, actor, "tenant.created", plan=plan, shard=tenant.shard, api_key_prefix=key.prefix)
    signals.emit(signals.tenant_created, tenant=tenant_ref(tenant), name=tenant.name, admin_email=admin_email)
    return tenant, key, secret


def request_pool_refill(shard: str, remaining: int) -> None:
    """Called after provisioning took a pooled schema: below half the target, a worker tops the pool up."""
    if remaining < settings().schema_pool_size // 2 + 1:
        celery_app.send_task("zixly.fleet.refill_schema_pool", kwargs={"shard": shard})


def refill_schema_pool(shard: str | None = None) -> dict:
    return pool.refill(get_router(), target=settings().schema_pool_size, shard=shard)


def move_tenant(slug: str, *, actor: Actor, to_shard: str | None = None, undo: bool = False, **options):
    """Move a tenant to another shard (or back, with undo); the move is written to its audit log."""
    router = get_router()
    move = shards.undo_move(router, slug, **options) if undo else shards.move_tenant(router, slug, to_shard,
                                                                                      **options)
    _audit(provisioning.get_tenant(router, slug), actor, "tenant.moved", from_shard=move.from_shard,
           to_shard=move.to_shard, undo_of=move.undo_of, rows=sum((move.row_counts or {}).values()))
    return move


def get_tenant(slug: str) -> Tenant:
    return provisioning.get_tenant(get_router(), slug)


def list_tenants(*, limit: int, after_id: int | None = None, status: str | None = None,
                 newest_first: bool = False) -> list[Tenant]:
    return provisioning.list_tenants(get_router(), limit=limit, after_id=after_id, status=status,
                                     newest_first=newest_first)


def update_tenant(slug: str, *, actor: Actor, plan: str | None = None, status: str | None = None) -> Tenant:
    router = get_router()
    tenant = provisioning.get_tenant(router, slug)
    if plan is not None and plan != tenant.plan:
        old = tenant.plan
        tenant = provisioning.change_plan(router, slug, plan)
        _audit(tenant, actor, "tenant.plan_changed", old=old, new=plan)
    if status is not None and status != tenant.status:
        action = {"suspended": "suspend", "active": "resume"}.get(status)
        if action is None:
            raise provisioning.InvalidTransition("status can be set to 'active' or 'suspended' only")
        tenant = provisioning.change_status(router, slug, action)
        _audit(tenant, actor, f"tenant.{tenant.status}")
    return tenant


def archive_tenant(slug: str, *, actor: Actor) -> Tenant:
    router = get_router()
    tenant = provisioning.get_tenant(router, slug)
    if tenant.status in ("active", "suspended"):
        _audit(tenant, actor, "tenant.archived")
    return provisioning.archive_tenant(router, slug)


def restore_tenant(slug: str, *, actor: Actor) -> Tenant:
    tenant = provisioning.restore_tenant(get_router(), slug)
    _audit(tenant, actor, "tenant.restored")
    return tenant
