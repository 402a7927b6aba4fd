"""A tenant's settings of each workflow (enabled, bindings, mappings, schedule)."""

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tenancy.base import TenantBase


class WorkflowSetting(TenantBase):
    __tablename__ = "workflow_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    event_types: Mapped[list] = mapped_column(ARRAY(String(128)), default=list)
    max_attempts: Mapped[int] = mapped_column(Integer, default=4)
    connections: Mapped[dict] = mapped_column(JSONB, default=dict)  # role ("source", "target") -> connection id
    mappings: Mapped[dict] = mapped_column(JSONB, default=dict)  # workflow-specific field mappings
    schedule_seconds: Mapped[int | None] = mapped_column(Integer)  # polling workflows: run every N seconds
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
