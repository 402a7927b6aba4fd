"""deliveries: each write to a provider sent through the outbound FIFO queues, with its outcome

Revision ID: t0006
Revises: t0005
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "t0006"
down_revision = "t0005"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
STATUSES = "('queued', 'sending', 'delivered', 'failed', 'dead')"


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("connection_id", pg.UUID(as_uuid=True), sa.ForeignKey("connections.id"), nullable=False),
        sa.Column("record_key", sa.String(255), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("args", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("dedup_key", sa.String(255), nullable=False, unique=True),
        sa.Column("job_id", pg.UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("replays", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("response_status", sa.Integer),
        sa.Column("response", pg.JSONB),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint(f"status IN {STATUSES}", name="deliveries_status"),
    )
    # the API's newest-first list (and its filters), a job's deliveries, and the relay's unsent rows per group
    op.create_index("deliveries_queued", "deliveries", ["queued_at", "id"])
    op.create_index("deliveries_status", "deliveries", ["status", "queued_at"])
    op.create_index("deliveries_connection", "deliveries", ["connection_id", "queued_at"])
    op.create_index("deliveries_job", "deliveries", ["job_id"], postgresql_where=sa.text("job_id IS NOT NULL"))
    op.create_index("deliveries_unsent", "deliveries", ["connection_id", "record_key", "queued_at"],
                    postgresql_where=sa.text("sent_at IS NULL AND status = 'queued'"))


def downgrade() -> None:
    op.drop_table("deliveries")
