"""Tenant-scoped API key management; the tenant always comes from the context, never from input."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from core.platform import audit, signals
from core.platform.actors import Actor
from tenancy import apikeys
from tenancy.context import current_tenant
from tenancy.db import catalog_session, catalog_transaction, tenant_transaction
from tenancy.models import ApiKey

MAX_ACTIVE_KEYS = 100


class ApiKeyNotFound(LookupError):
    pass


class TooManyKeys(Exception):
    pass


def list_api_keys(*, limit: int, after: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.tenant_id == current_tenant().id).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    if after:
        pivot = select(ApiKey.created_at).where(ApiKey.id == uuid.UUID(after)).scalar_subquery()
        query = query.where((ApiKey.created_at, ApiKey.id) > (pivot, uuid.UUID(after)))
    with catalog_session() as session:
        return list(session.scalars(query.limit(limit)))


def create_api_key(*, name: str, role: str, environment: str, actor: Actor) -> tuple[ApiKey, str]:
    tenant = current_tenant()
    with catalog_transaction() as session:
        active = session.scalar(select(func.count()).select_from(ApiKey).where(
            ApiKey.tenant_id == tenant.id, ApiKey.revoked_at.is_(None)))
        if active >= MAX_ACTIVE_KEYS:
            raise TooManyKeys(f"a tenant may have at most {MAX_ACTIVE_KEYS} active keys")
        key, secret = apikeys.issue(session, tenant_id=tenant.id, name=name, role=role,
                                    environment=environment, created_by=f"{actor.type}:{actor.id}")
    audit.record_now(actor=actor, action="api_key.created", target_type="api_key", target_id=str(key.id),
                     details={"name": name, "role": role, "prefix": key.prefix})
    signals.emit(signals.api_key_created, tenant=tenant, key_id=key.id, name=name, role=role, prefix=key.prefix,
                 created_by=key.created_by)
    return key, secret


def revoke_api_key(*, key_id: str, actor: Actor) -> ApiKey:
    tenant = current_tenant()
    try:
        ident = uuid.UUID(key_id)
    except ValueError:
        raise ApiKeyNotFound(key_id) from None
    with catalog_transaction() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.id == ident, ApiKey.tenant_id == tenant.id)
                             .with_for_update())
        if key is None:
            raise ApiKeyNotFound(key_id)
        if key.revoked_at is None:
            key.revoked_at = datetime.now(UTC)
    with tenant_transaction() as session:
        audit.record(session, actor=actor, action="api_key.revoked", target_type="api_key", target_id=key_id)
    return key
