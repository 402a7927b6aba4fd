"""Data-key rotation: re-seal every tenant's connection and subscription secrets under the primary key, row by
row under its own lock, so running connections and deliveries keep working throughout."""
from __future__ import annotations

from sqlalchemy import and_, or_, select

from core.connections.models import Connection
from core.connections.sealing import SEALED_FIELDS, reseal
from core.events.sealing import reseal_tenant_subscriptions
from core.platform import crypto
from tenancy.apikeys import tenant_ref
from tenancy.context import tenant_context
from tenancy.db import catalog_session, tenant_session, tenant_transaction
from tenancy.models import Tenant


def reseal_tenant_connections() -> int:
    """Re-seal this tenant's connection secrets that are not under the primary data key; returns rows changed.
    Each row is re-sealed under its own row lock, so running connections keep working throughout."""
    ring = crypto.keyring()
    current = f"{crypto.PREFIX}:{ring.primary}:%"
    stale = or_(*[and_(getattr(Connection, f"{f}_sealed").isnot(None),
                       getattr(Connection, f"{f}_sealed").notlike(current)) for f in SEALED_FIELDS])
    with tenant_session() as session:
        ids = list(session.scalars(select(Connection.id).where(stale)))
    changed = 0
    for ident in ids:
        with tenant_transaction() as session:
            row = session.get(Connection, ident, with_for_update=True)
            if row is not None and reseal(row, ring):
                changed += 1
    return changed


def rotate_data_keys(progress=None) -> dict:
    """Re-seal every tenant's secrets under the primary key (all tenants but archived ones)."""
    with catalog_session() as session:
        tenants = [tenant_ref(t) for t in session.scalars(
            select(Tenant).where(Tenant.status.in_(("active", "suspended"))).order_by(Tenant.slug))]
    summary = {"tenants": len(tenants), "connections_resealed": 0, "subscriptions_resealed": 0, "failed": {}}
    for tenant in tenants:
        try:
            with tenant_context(tenant):
                summary["connections_resealed"] += reseal_tenant_connections()
                summary["subscriptions_resealed"] += reseal_tenant_subscriptions()
        except Exception as exc:  # one tenant's failure is reported, the others still rotate
            summary["failed"][tenant.slug] = f"{type(exc).__name__}: {exc}"[:300]
        if progress:
            progress(tenant.slug)
    return summary
