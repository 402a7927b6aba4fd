"""connections: OAuth state of a connection, tokens and webhook secrets sealed (core.crypto), soft delete

Revision ID: t0004
Revises: t0003
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql as pg

revision = "t0004"
down_revision = "t0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("connections", "status", type_=sa.String(24), server_default="pending")
    op.add_column("connections", sa.Column("options", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")))
    op.add_column("connections", sa.Column("account_name", sa.String(255)))
    op.add_column("connections", sa.Column("accounts", pg.JSONB))
    op.add_column("connections", sa.Column("tokens_sealed", sa.Text))
    op.add_column("connections", sa.Column("token_expires_at", sa.DateTime(timezone=True)))
    op.add_column("connections", sa.Column("app_client_id", sa.String(255)))
    op.add_column("connections", sa.Column("app_secret_sealed", sa.Text))
    op.add_column("connections", sa.Column("webhook_secrets_sealed", sa.Text))
    op.add_column("connections", sa.Column("hook_token_sealed", sa.Text))
    op.add_column("connections", sa.Column("last_error", sa.Text))
    op.add_column("connections", sa.Column("authorized_at", sa.DateTime(timezone=True)))
    op.add_column("connections", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    if not context.is_offline_mode():
        _seal_plaintext_webhook_secrets()
    op.drop_column("connections", "webhook_secrets")


def _seal_plaintext_webhook_secrets() -> None:
    """Rows written before secrets were sealed: seal them now (needs the data keys; new schemas have none)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, webhook_secrets FROM connections "
                                "WHERE jsonb_array_length(webhook_secrets) > 0")).all()
    if not rows:
        return
    from core.platform import crypto

    ring = crypto.keyring()
    for conn_id, plain in rows:
        items = [{"id": f"s{n}", "secret": value, "created_at": None} for n, value in enumerate(plain, 1)]
        bind.execute(sa.text("UPDATE connections SET webhook_secrets_sealed = :v WHERE id = :id"),
                     {"v": ring.seal_json(items, f"connection:{conn_id}:webhook_secrets"), "id": conn_id})


def downgrade() -> None:
    op.add_column("connections", sa.Column("webhook_secrets", pg.JSONB, nullable=False,
                                           server_default=sa.text("'[]'::jsonb")))
    for column in ("deleted_at", "authorized_at", "last_error", "hook_token_sealed", "webhook_secrets_sealed",
                   "app_secret_sealed", "app_client_id", "token_expires_at", "tokens_sealed", "accounts",
                   "account_name", "options"):
        op.drop_column("connections", column)
    op.alter_column("connections", "status", type_=sa.String(16), server_default="active")
