"""webhook endpoints and the provider account index

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.BigInteger, nullable=False),
        sa.Column("connection_id", sa.UUID, nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["catalog.tenants.id"], name="fk_webhook_endpoints_tenant_id_tenants",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_webhook_endpoints"),
        schema="catalog",
    )
    op.create_index("ix_webhook_endpoints_tenant_id", "webhook_endpoints", ["tenant_id"], schema="catalog")
    op.create_index("ix_webhook_endpoints_connection_id", "webhook_endpoints", ["connection_id"], schema="catalog")
    op.create_table(
        "account_index",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("tenant_id", sa.BigInteger, nullable=False),
        sa.Column("connection_id", sa.UUID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["catalog.tenants.id"], name="fk_account_index_tenant_id_tenants",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("provider", "account_id", name="pk_account_index"),
        schema="catalog",
    )
    op.create_index("ix_account_index_tenant_id", "account_index", ["tenant_id"], schema="catalog")


def downgrade() -> None:
    op.drop_table("account_index", schema="catalog")
    op.drop_table("webhook_endpoints", schema="catalog")
