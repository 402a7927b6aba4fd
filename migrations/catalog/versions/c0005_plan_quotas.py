"""plan quotas: how many connections and webhook endpoints a tenant of each plan may have, and how long its
events, jobs, deliveries and notifications are kept

Revision ID: c0005
Revises: c0003
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "c0005"
down_revision = "c0003"
branch_labels = None
depends_on = None

QUOTAS = {"free": 5, "pro": 50, "enterprise": 500}  # connections, and endpoints alike (one per connection today)
RETENTION_DAYS = {"free": 30, "pro": 90, "enterprise": 365}


def upgrade() -> None:
    for column in ("max_connections", "max_hook_endpoints"):
        op.add_column("plans", sa.Column(column, sa.Integer(), nullable=False, server_default="50"),
                      schema="catalog")
    op.add_column("plans", sa.Column("retention_days", sa.Integer(), nullable=False, server_default="90"),
                  schema="catalog")
    plans = sa.table("plans", sa.column("name"), sa.column("max_connections"), sa.column("max_hook_endpoints"),
                     sa.column("retention_days"), schema="catalog")
    for name, quota in QUOTAS.items():
        op.execute(plans.update().where(plans.c.name == name).values(
            max_connections=quota, max_hook_endpoints=quota, retention_days=RETENTION_DAYS[name]))


def downgrade() -> None:
    for column in ("max_connections", "max_hook_endpoints", "retention_days"):
        op.drop_column("plans", column, schema="catalog")
