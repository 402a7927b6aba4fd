"""event subscriptions: tenants' own endpoints, the messages recorded for them, and every delivery attempt

Revision ID: t0009
Revises: t0008
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "t0009"
down_revision = "t0008"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
EMPTY = sa.text("'{}'")
MESSAGE_STATUSES = "('pending', 'sending', 'delivered', 'failed')"


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=""),
        sa.Column("event_types", pg.ARRAY(sa.String(64)), nullable=False),
        sa.Column("workflows", pg.ARRAY(sa.String(64)), nullable=False, server_default=EMPTY),
        sa.Column("connection_ids", pg.ARRAY(pg.UUID(as_uuid=True)), nullable=False, server_default=EMPTY),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("secrets_sealed", sa.Text, nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    )
    # the recorder's match: the subscriptions (not deleted) to one event type
    op.create_index("subscriptions_live", "subscriptions", ["event_types"], postgresql_using="gin",
                    postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_table(
        "subscription_messages",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("subscription_id", pg.UUID(as_uuid=True), sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("data", pg.JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replays", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("response_status", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint(f"status IN {MESSAGE_STATUSES}", name="subscription_messages_status"),
    )
    # a subscription's messages in creation order (replay since T); the sweeper's and the metric's undelivered scan
    op.create_index("subscription_messages_order", "subscription_messages", ["subscription_id", "seq"])
    op.create_index("subscription_messages_undelivered", "subscription_messages", ["next_attempt_at"],
                    postgresql_where=sa.text("status IN ('pending', 'sending')"))
    op.create_table(
        "subscription_attempts",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("subscription_id", pg.UUID(as_uuid=True), sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("message_id", pg.UUID(as_uuid=True),
                  sa.ForeignKey("subscription_messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("response_body", sa.Text),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index("subscription_attempts_newest", "subscription_attempts", ["subscription_id", "attempted_at", "id"])


def downgrade() -> None:
    op.drop_table("subscription_attempts")
    op.drop_table("subscription_messages")
    op.drop_table("subscriptions")
