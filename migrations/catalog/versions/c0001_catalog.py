"""catalog

Revision ID: c0001
Revises:
Create Date: 2026-11-25 04:50:18.580642
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'c0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response_body', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key', 'principal', name=op.f('pk_idempotency_keys')),
    schema='catalog'
    )
    op.create_index(op.f('ix_idempotency_keys_created_at'), 'idempotency_keys', ['created_at'], unique=False, schema='catalog')
    op.create_table('plans',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('requests_per_minute', sa.Integer(), nullable=False),
    sa.Column('key_requests_per_minute', sa.Integer(), nullable=False),
    sa.Column('webhook_requests_per_minute', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_plans')),
    schema='catalog'
    )
    op.create_table('shards',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('dsn', sa.Text(), nullable=True),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('accepting_tenants', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_shards')),
    schema='catalog'
    )
    op.create_table('tenants',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('slug', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('schema_name', sa.String(length=63), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('plan', sa.String(length=32), nullable=False),
    sa.Column('shard', sa.String(length=40), nullable=False),
    sa.Column('schema_revision', sa.String(length=64), nullable=True),
    sa.Column('archived_schema', sa.String(length=63), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('admin_email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("slug ~ '^[a-z][a-z0-9-]{2,39}$'", name=op.f('ck_tenants_slug')),
    sa.CheckConstraint("status IN ('provisioning','active','suspended','archived','failed')", name=op.f('ck_tenants_status')),
    sa.ForeignKeyConstraint(['plan'], ['catalog.plans.name'], name=op.f('fk_tenants_plan_plans')),
    sa.ForeignKeyConstraint(['shard'], ['catalog.shards.name'], name=op.f('fk_tenants_shard_shards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('schema_name', name=op.f('uq_tenants_schema_name')),
    sa.UniqueConstraint('slug', name=op.f('uq_tenants_slug')),
    schema='catalog'
    )
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('tenant_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('environment', sa.String(length=4), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('ADMIN','EDITOR','VIEWER')", name=op.f('ck_api_keys_role')),
    sa.ForeignKeyConstraint(['tenant_id'], ['catalog.tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix')),
    schema='catalog'
    )
    op.create_index(op.f('ix_api_keys_tenant_id'), 'api_keys', ['tenant_id'], unique=False, schema='catalog')
    plans = sa.table("plans", sa.column("name"), sa.column("requests_per_minute"),
                     sa.column("key_requests_per_minute"), sa.column("webhook_requests_per_minute"),
                     schema="catalog")
    op.bulk_insert(plans, [
        {"name": "free", "requests_per_minute": 60, "key_requests_per_minute": 60,
         "webhook_requests_per_minute": 600},
        {"name": "pro", "requests_per_minute": 600, "key_requests_per_minute": 300,
         "webhook_requests_per_minute": 6000},
        {"name": "enterprise", "requests_per_minute": 6000, "key_requests_per_minute": 3000,
         "webhook_requests_per_minute": 60000},
    ])
    # The default shard is the catalog's own database (dsn NULL).
    shards = sa.table("shards", sa.column("name"), sa.column("dsn"), sa.column("is_default"),
                      sa.column("accepting_tenants"), schema="catalog")
    op.bulk_insert(shards, [{"name": "default", "dsn": None, "is_default": True, "accepting_tenants": True}])


def downgrade() -> None:
    op.drop_index(op.f('ix_api_keys_tenant_id'), table_name='api_keys', schema='catalog')
    op.drop_table('api_keys', schema='catalog')
    op.drop_table('tenants', schema='catalog')
    op.drop_table('shards', schema='catalog')
    op.drop_table('plans', schema='catalog')
    op.drop_index(op.f('ix_idempotency_keys_created_at'), table_name='idempotency_keys', schema='catalog')
    op.drop_table('idempotency_keys', schema='catalog')
