"""The notification log and who hears about which event."""

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from tenancy.base import TenantBase


class Notification(TenantBase):
    """One notification (one Novu trigger): who is told what, and how sending it went."""

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    event: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    transaction_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    request: Mapped[dict] = mapped_column(JSONB)  # the body Novu receives (or would have, when skipped)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationSetting(TenantBase):
    """Who hears about one event type; an event with no row uses the defaults in core.notify.settings."""

    __tablename__ = "notification_settings"

    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    admins: Mapped[bool] = mapped_column(Boolean, default=True)
    users: Mapped[list] = mapped_column(JSONB, default=list)
    topics: Mapped[list] = mapped_column(ARRAY(String(64)), default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
