"""job leases: the worker holding a RUNNING job and until when, and the earliest time a waiting job may run

Revision ID: t0007
Revises: t0006
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "t0007"
down_revision = "t0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lease_owner", sa.String(128)))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column("jobs", sa.Column("not_before", sa.DateTime(timezone=True)))
    # the sweeper's scan: jobs still to be run, oldest first
    op.create_index("ix_jobs_unfinished", "jobs", ["updated_at"],
                    postgresql_where=sa.text("status IN ('QUEUED', 'RUNNING')"))


def downgrade() -> None:
    op.drop_index("ix_jobs_unfinished", table_name="jobs")
    for column in ("not_before", "lease_expires_at", "lease_owner"):
        op.drop_column("jobs", column)
