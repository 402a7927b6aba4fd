"""Subscription tables: a tenant's endpoints, the messages recorded for them, and every delivery attempt.

A message is one event for one subscription; its id is the `webhook-id` of every attempt and replay, so a
receiver de-duplicates on it. `seq` orders a subscription's messages by creation (replay keeps that order).
"""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Identity, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from tenancy.base import TenantBase

PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
MESSAGE_STATUSES = (PENDING, SENDING, DELIVERED, FAILED)


class Subscription(TenantBase):
    """A tenant's endpoint and what it hears. Empty `workflows` / `connection_ids` mean: no filter."""

    __tablename__ = "subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), default="")
    event_types: Mapped[list] = mapped_column(ARRAY(String(64)))
    workflows: Mapped[list] = mapped_column(ARRAY(String(64)), default=list)
    connection_ids: Mapped[list] = mapped_column(ARRAY(UUID(as_uuid=True)), default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # [{"secret": "whsec_…", "expires_at": iso | None}], newest first, sealed under the data keys
    secrets_sealed: Mapped[str] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)  # messages given up on since a success
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # first failure since a success
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SubscriptionMessage(TenantBase):
    """One event for one subscription: pending (due at `next_attempt_at`) -> sending (held until `lease_until`)
    -> delivered | failed (out of attempts, or refused for good); pending again on a retry or a replay."""

    __tablename__ = "subscription_messages"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True,
                                          server_default=text("gen_random_uuid()"))
    subscription_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True),
                                                       ForeignKey("subscriptions.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSONB)
    # server defaults, not Python ones: the recorder inserts these rows from a SELECT inside other statements
    status: Mapped[str] = mapped_column(String(16), server_default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    replays: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    seq: Mapped[int] = mapped_column(BigInteger, Identity())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())


class SubscriptionAttempt(TenantBase):
    """One HTTP attempt of one message: what the endpoint answered (status, truncated body) or why it failed."""

    __tablename__ = "subscription_attempts"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True,
                                          server_default=text("gen_random_uuid()"))
    subscription_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True),
                                                       ForeignKey("subscriptions.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True),
                                                  ForeignKey("subscription_messages.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # delivered | retrying | failed | gone | refused
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
