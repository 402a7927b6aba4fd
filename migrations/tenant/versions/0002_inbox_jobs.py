"""connections, inbound events, jobs with their execution log, workflow settings, outbox

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("account_id", sa.String(255), nullable=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("webhook_secrets", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "inbound_events",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("connection_id", pg.UUID(as_uuid=True), sa.ForeignKey("connections.id", ondelete="SET NULL")),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(255)),
        sa.Column("resource_id", sa.String(255)),
        sa.Column("occurred_at", sa.String(64)),
        sa.Column("headers", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("payload", pg.JSONB, nullable=False),
        sa.Column("raw_body", sa.LargeBinary),
        sa.Column("status", sa.String(16), nullable=False, server_default="received"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("replays", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("provider", "provider_event_id", name="uq_inbound_events_provider_event"),
    )
    op.create_index("ix_inbound_events_received_at", "inbound_events", ["received_at"])
    op.create_table(
        "workflow_settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("event_types", pg.ARRAY(sa.String(128)), nullable=False, server_default="{}"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="4"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.execute("INSERT INTO workflow_settings (name, enabled, event_types) VALUES ('echo', true, '{*}')")
    op.create_table(
        "jobs",
        sa.Column("id", pg.UUID(as_uuid=True), primary_key=True),
        sa.Column("workflow", sa.String(64), nullable=False),
        sa.Column("input", pg.JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), sa.ForeignKey("inbound_events.id", ondelete="SET NULL")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="4"),
        sa.Column("result", pg.JSONB),
        sa.Column("error", sa.Text),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("status IN ('QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED')", name="ck_jobs_status"),
    )
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_event_id", "jobs", ["event_id"])
    op.create_table(
        "job_steps",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("job_id", pg.UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_index("ix_job_steps_job_id", "job_steps", ["job_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("args", pg.JSONB, nullable=False),
        sa.Column("countdown", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )


def downgrade() -> None:
    for table in ("outbox", "job_steps", "jobs", "workflow_settings", "inbound_events", "connections"):
        op.drop_table(table)
