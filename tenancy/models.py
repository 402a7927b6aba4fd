"""Master catalog models (schema `catalog`): plans, shards, tenants, API keys, staff idempotency records,
the pool of ready tenant schemas and the record of tenant moves between shards."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from tenancy.base import CatalogBase

TENANT_STATUSES = ("provisioning", "active", "suspended", "archived", "failed", "erased")  # erased: a tombstone
ROLES = ("ADMIN", "EDITOR", "VIEWER")


class Plan(CatalogBase):
    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    key_requests_per_minute: Mapped[int] = mapped_column(Integer)
    webhook_requests_per_minute: Mapped[int] = mapped_column(Integer)  # per tenant, across its endpoints
    max_connections: Mapped[int] = mapped_column(Integer, server_default="50")
    max_hook_endpoints: Mapped[int] = mapped_column(Integer, server_default="50")
    retention_days: Mapped[int] = mapped_column(Integer, server_default="90")  # events, jobs, deliveries, notices
    max_subscriptions: Mapped[int] = mapped_column(Integer, default=3)  # event subscriptions (core.subscriptions)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Shard(CatalogBase):
    __tablename__ = "shards"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    # NULL: the catalog's own database; "env:NAME": read the URL from that env var; else a URL.
    dsn: Mapped[str | None] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    accepting_tenants: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Tenant(CatalogBase):
    __tablename__ = "tenants"
    __mapper_args__ = {"eager_defaults": True}  # fetch updated_at on UPDATE so detached rows stay readable
    __table_args__ = (
        CheckConstraint("status IN ('provisioning','active','suspended','archived','failed','erased')", name="status"),
        CheckConstraint("slug ~ '^[a-z][a-z0-9-]{2,39}$'", name="slug"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    schema_name: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="provisioning")
    plan: Mapped[str] = mapped_column(ForeignKey("catalog.plans.name"))
    shard: Mapped[str] = mapped_column(ForeignKey("catalog.shards.name"))
    schema_revision: Mapped[str | None] = mapped_column(String(64))
    archived_schema: Mapped[str | None] = mapped_column(String(63))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # Set when a fleet migration of this tenant failed; cleared when it reaches the head.
    quarantined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    migration_error: Mapped[str | None] = mapped_column(Text)
    admin_email: Mapped[str | None] = mapped_column(String(320))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # its data is gone; the row stays
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class ApiKey(CatalogBase):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('ADMIN','EDITOR','VIEWER')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("catalog.tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(8))
    environment: Mapped[str] = mapped_column(String(4), default="live")
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyColumns:
    """Shared shape of an idempotency record; the catalog and each tenant schema have a table of it."""

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    principal: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


class StaffIdempotencyRecord(IdempotencyColumns, CatalogBase):
    __tablename__ = "idempotency_keys"


class WebhookEndpoint(CatalogBase):
    """An opaque per-connection hook token (stored as its SHA-256) → tenant, connection, provider."""

    __tablename__ = "webhook_endpoints"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("catalog.tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AccountIndex(CatalogBase):
    """Which tenant connection owns a provider account, for app-level webhooks (Xero tenantId, …)."""

    __tablename__ = "account_index"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("catalog.tenants.id", ondelete="CASCADE"), index=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SchemaPoolEntry(CatalogBase):
    """A ready, unassigned schema at `revision` on `shard`; provisioning renames one to the tenant's schema."""

    __tablename__ = "schema_pool"
    __table_args__ = (Index("ix_schema_pool_shard_revision", "shard", "revision"),)

    schema_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    shard: Mapped[str] = mapped_column(ForeignKey("catalog.shards.name"), primary_key=True)
    revision: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantMove(CatalogBase):
    """One move of a tenant between shards; the source copy is kept (renamed) until cleaned up."""

    __tablename__ = "tenant_moves"
    __table_args__ = (CheckConstraint("status IN ('copying','done','failed','cleaned')", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("catalog.tenants.id", ondelete="CASCADE"), index=True)
    from_shard: Mapped[str] = mapped_column(ForeignKey("catalog.shards.name"))
    to_shard: Mapped[str] = mapped_column(ForeignKey("catalog.shards.name"))
    status: Mapped[str] = mapped_column(String(16))
    previous_status: Mapped[str] = mapped_column(String(16))
    leftover_schema: Mapped[str | None] = mapped_column(String(63))
    row_counts: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    undo_of: Mapped[int | None] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StaffAuditEntry(CatalogBase):
    """What staff did to a tenant (exported, erased): in the catalog, so it outlives the tenant's own schema."""

    __tablename__ = "staff_audit"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    tenant_slug: Mapped[str] = mapped_column(String(40), index=True)
    details: Mapped[dict] = mapped_column(JSONB, default=dict)
