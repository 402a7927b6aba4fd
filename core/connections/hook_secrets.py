"""A connection's webhook secrets: up to three active at once, so a sender's secret rotates without a gap."""
from __future__ import annotations

from datetime import UTC, datetime

from core.connections.errors import ConnectionNotFound
from core.connections.models import Connection
from core.connections.providers import new_secret
from core.connections.sealing import hmac_equal, seal, secret_item, webhook_secrets
from core.connections.store import get_connection, parse_connection_id
from core.platform import audit
from core.platform.actors import Actor
from core.platform.errors import Conflict, NotFound
from tenancy.db import tenant_transaction


def _now() -> datetime:
    return datetime.now(UTC)


MAX_WEBHOOK_SECRETS = 3


def set_webhook_secrets(connection_id, secrets_: list[str]) -> None:
    with tenant_transaction() as session:
        conn = session.get(Connection, parse_connection_id(connection_id), with_for_update=True)
        if conn is None:
            raise ConnectionNotFound(str(connection_id))
        conn.webhook_secrets_sealed = seal(conn.id, "webhook_secrets", [secret_item(s) for s in secrets_])


def add_webhook_secret(connection_id, *, actor: Actor, secret: str | None = None) -> dict:
    """Add an active secret (generated unless the provider gave one); the older ones stay valid until retired."""
    ident = get_connection(connection_id).id
    with tenant_transaction() as session:
        conn = session.get(Connection, ident, with_for_update=True)
        items = webhook_secrets(conn)
        if len(items) >= MAX_WEBHOOK_SECRETS:
            raise Conflict(f"a connection has at most {MAX_WEBHOOK_SECRETS} active secrets; retire one first")
        if secret is not None and any(hmac_equal(secret, i["secret"]) for i in items):
            raise Conflict("this secret is already active")
        item = secret_item(secret or new_secret(conn.provider))
        conn.webhook_secrets_sealed = seal(conn.id, "webhook_secrets", items + [item])
        conn.updated_at = _now()
    audit.record_now(actor=actor, action="connection.webhook_secret_added", target_type="connection",
                     target_id=str(ident), details={"secret_id": item["id"]})
    return item


def retire_webhook_secret(connection_id, secret_id: str, *, actor: Actor) -> None:
    ident = get_connection(connection_id).id
    with tenant_transaction() as session:
        conn = session.get(Connection, ident, with_for_update=True)
        items = webhook_secrets(conn)
        kept = [i for i in items if i["id"] != secret_id]
        if len(kept) == len(items):
            raise NotFound(f"no active webhook secret {secret_id!r}")
        conn.webhook_secrets_sealed = seal(conn.id, "webhook_secrets", kept)
        conn.updated_at = _now()
    audit.record_now(actor=actor, action="connection.webhook_secret_retired", target_type="connection",
                     target_id=str(ident), details={"secret_id": secret_id})
