"""workflows: bindings, mappings and schedule per workflow; related records of each job; polling cursors

Revision ID: t0005
Revises: t0004
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "t0005"
down_revision = "t0004"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.add_column("workflow_settings", sa.Column("connections", pg.JSONB, nullable=False,
                                                 server_default=sa.text("'{}'::jsonb")))
    op.add_column("workflow_settings", sa.Column("mappings", pg.JSONB, nullable=False,
                                                 server_default=sa.text("'{}'::jsonb")))
    op.add_column("workflow_settings", sa.Column("schedule_seconds", sa.Integer))
    op.add_column("workflow_settings", sa.Column("next_run_at", sa.DateTime(timezone=True)))
    op.create_table(
        "related_records",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("job_id", pg.UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("record_type", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("detail", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint("action IN ('read', 'created', 'updated', 'deleted')", name="related_records_action"),
    )
    op.create_index("related_records_job", "related_records", ["job_id", "id"])
    op.create_index("related_records_record", "related_records", ["system", "record_type", "record_id"])
    op.create_table(
        "poll_cursors",
        sa.Column("workflow", sa.String(64), primary_key=True),
        sa.Column("connection_id", pg.UUID(as_uuid=True), sa.ForeignKey("connections.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("cursor", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )


def downgrade() -> None:
    op.drop_table("poll_cursors")
    op.drop_table("related_records")
    for column in ("next_run_at", "schedule_seconds", "mappings", "connections"):
        op.drop_column("workflow_settings", column)
