"""Platform tables of every tenant schema: the audit log, idempotency records and the outbox."""

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Identity, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenancy.base import TenantBase
from tenancy.models import IdempotencyColumns


class AuditEntry(TenantBase):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict] = mapped_column(JSONB, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64))


class TenantIdempotencyRecord(IdempotencyColumns, TenantBase):
    __tablename__ = "idempotency_keys"


class OutboxMessage(TenantBase):
    """A task to publish, committed with the row that needs it; published after commit or by the relay."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task: Mapped[str] = mapped_column(String(128))
    args: Mapped[list] = mapped_column(JSONB)
    countdown: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
