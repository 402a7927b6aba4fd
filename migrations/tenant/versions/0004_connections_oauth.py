"""connections: OAuth state of a connection, tokens and webhook secrets sealed, soft delete

Rows written before secrets were sealed get their webhook secrets sealed here, in the format of that day
(`v1:<key id>:<base64url(nonce | AES-256-GCM ciphertext+tag)>`, associated data
`connection:<id>:webhook_secrets`), frozen in this file: a migration is history and never imports application
code. The key is the primary (first) of ZIXLY_DATA_KEYS (`kid:base64key,...`), as the service reads it.

Revision ID: t0004
Revises: t0003
Create Date: 2026-11-25
"""
import base64
import json
import os

import sqlalchemy as sa
from alembic import context, op
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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


def _primary_data_key() -> tuple[str, bytes]:
    spec = context.config.attributes.get("data_keys") or os.environ.get("ZIXLY_DATA_KEYS", "")
    first = next((item.strip() for item in spec.split(",") if item.strip()), "")
    kid, sep, material = first.partition(":")
    if not sep:
        raise RuntimeError("t0004 must seal existing webhook secrets: set ZIXLY_DATA_KEYS (kid:base64key,...)")
    key = base64.urlsafe_b64decode(material + "=" * (-len(material) % 4))
    if len(key) != 32:
        raise RuntimeError(f"data key {kid!r} must be 32 bytes")
    return kid, key


def _seal(kid: str, key: bytes, value, associated: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(value, separators=(",", ":")).encode(), associated.encode())
    return f"v1:{kid}:{base64.urlsafe_b64encode(nonce + sealed).rstrip(b'=').decode()}"


def _seal_plaintext_webhook_secrets() -> None:
    """Rows written before secrets were sealed: seal them now (needs the data keys; new schemas have none)."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, webhook_secrets FROM connections "
                                "WHERE jsonb_array_length(webhook_secrets) > 0")).all()
    if not rows:
        return
    kid, key = _primary_data_key()
    for conn_id, plain in rows:
        items = [{"id": f"s{n}", "secret": value, "created_at": None} for n, value in enumerate(plain, 1)]
        bind.execute(sa.text("UPDATE connections SET webhook_secrets_sealed = :v WHERE id = :id"),
                     {"v": _seal(kid, key, items, f"connection:{conn_id}:webhook_secrets"), "id": conn_id})


def downgrade() -> None:
    op.add_column("connections", sa.Column("webhook_secrets", pg.JSONB, nullable=False,
                                           server_default=sa.text("'[]'::jsonb")))
    for column in ("deleted_at", "authorized_at", "last_error", "hook_token_sealed", "webhook_secrets_sealed",
                   "app_secret_sealed", "app_client_id", "token_expires_at", "tokens_sealed", "accounts",
                   "account_name", "options"):
        op.drop_column("connections", column)
    op.alter_column("connections", "status", type_=sa.String(16), server_default="active")
