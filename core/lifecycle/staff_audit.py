"""The staff audit log (catalog.staff_audit): what staff did to a tenant, kept where it outlives the tenant."""
from __future__ import annotations

from core.platform.actors import Actor
from tenancy.db import catalog_transaction
from tenancy.models import StaffAuditEntry


def record(*, actor: Actor, action: str, slug: str, details: dict | None = None) -> None:
    with catalog_transaction() as session:
        session.add(StaffAuditEntry(actor_type=actor.type, actor_id=actor.id, action=action, tenant_slug=slug,
                                    details=details or {}))
