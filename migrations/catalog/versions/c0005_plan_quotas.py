"""plan quotas: how many connections and webhook endpoints a tenant of each plan may have, and how long its
events, jobs, deliveries and notifications are kept; erased tenants as tombstones, and the staff audit log
(what staff did to a tenant, kept in the catalog because an erased tenant's own audit log is gone)

Revision ID: c0005
Revises: c0004
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c0005"
down_revision = "c0004"
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


    op.drop_constraint(op.f("ck_tenants_status"), "tenants", schema="catalog", type_="check")
    op.create_check_constraint(op.f("ck_tenants_status"), "tenants",
                               "status IN ('provisioning','active','suspended','archived','failed','erased')",
                               schema="catalog")
    op.add_column("tenants", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True), schema="catalog")
    op.create_table(
        "staff_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("tenant_slug", sa.String(40), nullable=False),
        sa.Column("details", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_staff_audit"),
        schema="catalog",
    )
    op.create_index("ix_staff_audit_tenant_slug", "staff_audit", ["tenant_slug"], schema="catalog")


def downgrade() -> None:
    op.drop_table("staff_audit", schema="catalog")
    op.drop_column("tenants", "erased_at", schema="catalog")
    op.drop_constraint(op.f("ck_tenants_status"), "tenants", schema="catalog", type_="check")
    op.create_check_constraint(op.f("ck_tenants_status"), "tenants",
                               "status IN ('provisioning','active','suspended','archived','failed')", schema="catalog")
    for column in ("max_connections", "max_hook_endpoints", "retention_days"):
        op.drop_column("plans", column, schema="catalog")
