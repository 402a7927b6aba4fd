"""Fleet migrations: the catalog first, then every tenant schema not yet at the tenant head."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from tenancy.db import Router
from tenancy.migrate import tenant_head, upgrade_catalog, upgrade_tenant
from tenancy.models import Tenant

MIGRATABLE = ("active", "suspended")


@dataclass
class FleetResult:
    head: str
    migrated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def pending_tenants(router: Router, head: str) -> list[Tenant]:
    """One catalog query: the tenants whose recorded revision is not the head."""
    with router.catalog_session() as session:
        query = select(Tenant).where(Tenant.status.in_(MIGRATABLE),
                                     Tenant.schema_revision.is_distinct_from(head)).order_by(Tenant.id)
        return list(session.scalars(query))


def upgrade_fleet(router: Router, *, on_tenant=None, lock_timeout: str = "5s") -> FleetResult:
    upgrade_catalog(router.catalog_engine)
    head = tenant_head()
    result = FleetResult(head=head)
    for tenant in pending_tenants(router, head):
        try:
            with router.shard_engine(tenant.shard).begin() as conn:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{lock_timeout}'")
                revision = upgrade_tenant(conn, tenant.schema_name)
            with router.catalog_session() as session, session.begin():
                session.get(Tenant, tenant.id).schema_revision = revision
            result.migrated.append(tenant.slug)
        except Exception as exc:  # one tenant's failure does not stop the fleet
            result.failed[tenant.slug] = f"{type(exc).__name__}: {exc}"[:500]
        if on_tenant:
            on_tenant(tenant.slug)
    return result
