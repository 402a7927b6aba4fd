"""fleet: migration quarantine on tenants, the pool of ready schemas, and the record of tenant moves

Revision ID: c0003
Revises: c0002
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True), schema="catalog")
    op.add_column("tenants", sa.Column("migration_error", sa.Text(), nullable=True), schema="catalog")
    op.create_table(
        "schema_pool",
        sa.Column("schema_name", sa.String(63), nullable=False),
        sa.Column("shard", sa.String(40), nullable=False),
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["shard"], ["catalog.shards.name"], name="fk_schema_pool_shard_shards"),
        sa.PrimaryKeyConstraint("schema_name", "shard", name="pk_schema_pool"),
        schema="catalog",
    )
    op.create_index("ix_schema_pool_shard_revision", "schema_pool", ["shard", "revision"], schema="catalog")
    op.create_table(
        "tenant_moves",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("from_shard", sa.String(40), nullable=False),
        sa.Column("to_shard", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_status", sa.String(16), nullable=False),
        sa.Column("leftover_schema", sa.String(63), nullable=True),
        sa.Column("row_counts", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("undo_of", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('copying','done','failed','cleaned')", name="ck_tenant_moves_status"),
        sa.ForeignKeyConstraint(["tenant_id"], ["catalog.tenants.id"], name="fk_tenant_moves_tenant_id_tenants",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["from_shard"], ["catalog.shards.name"], name="fk_tenant_moves_from_shard_shards"),
        sa.ForeignKeyConstraint(["to_shard"], ["catalog.shards.name"], name="fk_tenant_moves_to_shard_shards"),
        sa.PrimaryKeyConstraint("id", name="pk_tenant_moves"),
        schema="catalog",
    )
    op.create_index("ix_tenant_moves_tenant_id", "tenant_moves", ["tenant_id"], schema="catalog")


def downgrade() -> None:
    op.drop_table("tenant_moves", schema="catalog")
    op.drop_table("schema_pool", schema="catalog")
    op.drop_column("tenants", "migration_error", schema="catalog")
    op.drop_column("tenants", "quarantined_at", schema="catalog")
