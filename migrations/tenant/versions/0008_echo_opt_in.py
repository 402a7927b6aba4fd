"""echo is opt-in: the row 0002 seeded (echo enabled for every event) is removed unless the tenant changed it

Revision ID: t0008
Revises: t0007
Create Date: 2026-12-03

Every webhook started an extra `echo` job because 0002 enabled it for all event types. A tenant that has ever
saved echo's settings (an audit entry `workflow.updated` for it) keeps its row; otherwise the seeded row goes,
and echo reads as disabled until enabled with `PUT /v1/workflows/echo`.
"""
from alembic import op

revision = "t0008"
down_revision = "t0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        DELETE FROM workflow_settings
        WHERE name = 'echo' AND enabled AND event_types = '{*}'
          AND NOT EXISTS (SELECT 1 FROM audit_log
                          WHERE action = 'workflow.updated' AND target_type = 'workflow' AND target_id = 'echo')
    """)


def downgrade() -> None:
    op.execute("INSERT INTO workflow_settings (name, enabled, event_types) VALUES ('echo', true, '{*}') "
               "ON CONFLICT (name) DO NOTHING")
