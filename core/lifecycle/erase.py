"""Erase a tenant: its schema (and archived copy and move leftovers), its S3 prefix (every version), its Redis
keys, and its catalog records, leaving a tombstone row (`status = 'erased'`, no name or email) that keeps the
slug taken and says when.

Invariant: only the tenant's own things are touched — its schemas by the names the catalog gives, S3 keys under
`{slug}/`, Redis keys named by `tenant_key` (`t:{slug}:…`, wherever a prefix puts them) — and the tombstone is
written first, in one catalog transaction that also removes its API keys, webhook endpoints and account index
entries, so nothing routes to the tenant any more while the rest is dropped. An active tenant is refused (suspend
or archive it first). Running it again finishes an erasure a crash interrupted (every step is idempotent). Each
erasure is written to the catalog's staff audit (the tenant's own audit log goes with its schema).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select

from core.lifecycle import staff_audit
from core.platform import fair_queue
from core.platform.actors import Actor
from core.platform.runtime import aws_client, redis_client, settings
from tenancy import routecache
from tenancy.apikeys import tenant_ref
from tenancy.context import tenant_context, tenant_key
from tenancy.db import get_router
from tenancy.models import AccountIndex, ApiKey, Tenant, WebhookEndpoint
from tenancy.migrate import quote_ident
from tenancy.provisioning import InvalidTransition, TenantNotFound
from tenancy.shards import drop_leftovers

ERASABLE = ("suspended", "archived", "failed", "erased")
Progress = Callable[[str, int], None]


@dataclass
class ErasureReport:
    slug: str
    schemas: list[str] = field(default_factory=list)
    objects: int = 0
    redis_keys: int = 0
    catalog_rows: int = 0


def _tombstone(slug: str) -> tuple[Tenant, int]:
    with get_router().catalog_session() as session, session.begin():
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug).with_for_update())
        if tenant is None:
            raise TenantNotFound(f"no tenant {slug!r}")
        if tenant.status not in ERASABLE:
            raise InvalidTransition(f"cannot erase a tenant that is {tenant.status}: suspend or archive it first")
        removed = 0
        for model in (ApiKey, WebhookEndpoint, AccountIndex):
            removed += session.execute(delete(model).where(model.tenant_id == tenant.id)).rowcount
        tenant.status, tenant.name, tenant.admin_email = "erased", "", None
        tenant.erased_at = tenant.erased_at or func.now()
    routecache.forget_all()
    return tenant, removed


def _drop_schemas(tenant: Tenant) -> list[str]:
    router = get_router()
    dropped = drop_leftovers(router, tenant.slug)  # the old copies its moves kept
    for schema in filter(None, (tenant.schema_name, tenant.archived_schema)):
        with router.shard_engine(tenant.shard).begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        dropped.append(f"{tenant.shard}:{schema}")
    return dropped


def _delete_objects(slug: str, progress: Progress) -> int:
    s3, bucket, deleted = aws_client("s3"), settings().artifacts_bucket, 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=f"{slug}/"):
        versions = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(versions), 1000):  # the most one DeleteObjects call takes
            batch = versions[start:start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
            progress("s3", len(batch))
    return deleted


def _delete_redis_keys(tenant: Tenant, progress: Progress) -> int:
    client, deleted = redis_client(), 0
    with tenant_context(tenant_ref(tenant)):
        fair_queue.forget_tenant()
        own = tenant_key("")  # "t:{slug}:", the namespace of every key named for the tenant
    batch = []
    for key in client.scan_iter(match=f"*{own}*", count=1000):
        batch.append(key)
        if len(batch) == 500:
            deleted += client.delete(*batch)
            progress("redis", len(batch))
            batch = []
    if batch:
        deleted += client.delete(*batch)
        progress("redis", len(batch))
    return deleted


def erase_tenant(slug: str, *, actor: Actor, progress: Progress | None = None) -> ErasureReport:
    """Erase the tenant's data for good and leave its tombstone; answers what was removed."""
    progress = progress or (lambda what, n: None)
    tenant, removed = _tombstone(slug)
    report = ErasureReport(slug, catalog_rows=removed)
    report.schemas = _drop_schemas(tenant)
    progress("schemas", len(report.schemas))
    report.objects = _delete_objects(slug, progress)
    report.redis_keys = _delete_redis_keys(tenant, progress)
    staff_audit.record(actor=actor, action="tenant.erased", slug=slug, details={
        "schemas": report.schemas, "objects": report.objects, "redis_keys": report.redis_keys,
        "catalog_rows": report.catalog_rows})
    return report
