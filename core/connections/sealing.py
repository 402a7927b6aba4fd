"""A connection's secrets at rest: each field sealed under the data keys, bound to its row and field,
so a sealed value copied to another row or field does not open."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from connectors.oauth import TokenSet
from core.connections.models import Connection
from core.platform import crypto


def _now() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def seal_context(conn_id, field: str) -> str:
    return f"connection:{conn_id}:{field}"


def seal(conn_id, field: str, value) -> str:
    return crypto.keyring().seal_json(value, seal_context(conn_id, field))


def open_field(conn: Connection, field: str):
    sealed = getattr(conn, f"{field}_sealed")
    return None if sealed is None else crypto.keyring().open_json(sealed, seal_context(conn.id, field))


def webhook_secrets(conn: Connection) -> list[dict]:
    return open_field(conn, "webhook_secrets") or []


def webhook_secret_values(conn: Connection) -> list[str]:
    return [item["secret"] for item in webhook_secrets(conn)]


def hook_token(conn: Connection) -> str | None:
    return open_field(conn, "hook_token")


def tokens_of(conn: Connection) -> TokenSet | None:
    raw = open_field(conn, "tokens")
    return None if raw is None else TokenSet.from_dict(raw)


def store_tokens(conn: Connection, tokens: TokenSet) -> None:
    conn.tokens_sealed = seal(conn.id, "tokens", tokens.to_dict())
    conn.token_expires_at = (datetime.fromtimestamp(tokens.expires_at, UTC) if tokens.expires_at else None)
    conn.updated_at = _now()


def secret_item(secret: str) -> dict:
    return {"id": "ws_" + secrets.token_hex(6), "secret": secret, "created_at": _now().isoformat()}


SEALED_FIELDS = ("tokens", "app_secret", "webhook_secrets", "hook_token")


def reseal(conn: Connection, ring: crypto.Keyring) -> bool:
    """Re-seal every secret of the row under the primary key; True when something changed."""
    changed = False
    for field in SEALED_FIELDS:
        sealed = getattr(conn, f"{field}_sealed")
        if ring.needs_rotation(sealed):
            setattr(conn, f"{field}_sealed", ring.reseal(sealed, seal_context(conn.id, field)))
            changed = True
    return changed
