"""A tenant's connections to providers (schema placeholder `__tenant__`, routed by tenancy)."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from tenancy.base import TenantBase


class Connection(TenantBase):
    """A tenant's link to one provider account. Secrets are sealed by core.platform.crypto, bound to this row's id."""

    __tablename__ = "connections"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    provider: Mapped[str] = mapped_column(String(32))
    # pending -> (select_account ->) active -> reauth_required -> active ... ; revoked when deleted
    status: Mapped[str] = mapped_column(String(24), default="pending")
    account_id: Mapped[str | None] = mapped_column(String(255))
    account_name: Mapped[str | None] = mapped_column(String(255))
    accounts: Mapped[list | None] = mapped_column(JSONB)  # choices offered after consent (Xero organisations)
    name: Mapped[str] = mapped_column(String(200), default="")
    options: Mapped[dict] = mapped_column(JSONB, default=dict)
    tokens_sealed: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    app_client_id: Mapped[str | None] = mapped_column(String(255))
    app_secret_sealed: Mapped[str | None] = mapped_column(Text)
    webhook_secrets_sealed: Mapped[str | None] = mapped_column(Text)
    hook_token_sealed: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    authorized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
