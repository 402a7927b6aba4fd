"""notification log and notification settings

Revision ID: t0003
Revises: t0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "t0003"
down_revision = "t0002"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("request", pg.JSONB, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("transaction_id", name="uq_notifications_transaction_id"),
        sa.CheckConstraint("status IN ('queued','sent','failed','skipped')", name="ck_notifications_status"),
    )
    op.create_index("ix_notifications_created_at", "notifications", ["created_at"])
    op.create_index("ix_notifications_status", "notifications", ["status"])
    op.create_table(
        "notification_settings",
        sa.Column("event", sa.String(64), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("admins", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("users", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("topics", pg.ARRAY(sa.String(64)), nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )


def downgrade() -> None:
    op.drop_table("notification_settings")
    op.drop_table("notifications")
