"""plans: how many event subscriptions a tenant of each plan may have

Revision ID: c0004
Revises: c0003
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "c0004"
down_revision = "c0003"
branch_labels = None
depends_on = None

LIMITS = {"free": 3, "pro": 25, "enterprise": 100}


def upgrade() -> None:
    op.add_column("plans", sa.Column("max_subscriptions", sa.Integer(), nullable=False, server_default="3"),
                  schema="catalog")
    for name, limit in LIMITS.items():
        op.execute(sa.text("UPDATE catalog.plans SET max_subscriptions = :limit WHERE name = :name")
                   .bindparams(limit=limit, name=name))


def downgrade() -> None:
    op.drop_column("plans", "max_subscriptions", schema="catalog")
