"""The tenant's audit log: who did what, when, from which key or user."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.platform.actors import Actor
from core.platform.models import AuditEntry
from tenancy.db import tenant_session, tenant_transaction


def record(session: Session, *, actor: Actor, action: str, target_type: str | None = None,
           target_id: str | None = None, details: dict | None = None) -> AuditEntry:
    """Add an entry inside the caller's tenant transaction (so it commits or rolls back with the change)."""
    entry = AuditEntry(actor_type=actor.type, actor_id=actor.id, action=action, target_type=target_type,
                       target_id=target_id, details=details or {}, request_id=actor.request_id)
    session.add(entry)
    return entry


def record_now(*, actor: Actor, action: str, **fields) -> None:
    with tenant_transaction() as session:
        record(session, actor=actor, action=action, **fields)


def list_entries(*, limit: int, before_id: int | None = None, action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if action:
        query = query.where(AuditEntry.action == action)
    with tenant_session() as session:
        return list(session.scalars(query))
