"""Token refresh under a Redis lock, so two workers never spend the same rotating refresh token; a refresh
the provider refuses marks the connection `reauth_required` (and says so) instead of retrying forever."""
from __future__ import annotations

import time
from datetime import UTC, datetime

from connectors.errors import ConnectorError, ReauthRequired
from connectors.oauth import TokenSet
from core.connections.errors import ConnectionNotUsable
from core.connections.models import Connection
from core.connections.providers import app_credentials, connector
from core.connections.sealing import hmac_equal, store_tokens, tokens_of
from core.connections.store import SYSTEM, get_connection, parse_connection_id
from core.events import catalogue, recorder
from core.platform import audit, metrics, signals
from core.platform.errors import Unavailable
from core.platform.runtime import redis_client, settings
from tenancy.context import current_tenant, tenant_key
from tenancy.db import tenant_transaction


def _now() -> datetime:
    return datetime.now(UTC)


def mark_reauth(conn_id, reason: str) -> None:
    with tenant_transaction() as session:
        row = session.get(Connection, conn_id, with_for_update=True)
        row.status, row.last_error, row.updated_at = "reauth_required", reason[:500], _now()
        recorder.record(session, catalogue.CONNECTION_REAUTH_REQUIRED, {
            "connection_id": str(conn_id), "provider": row.provider, "reason": reason[:500]}, connection_id=conn_id)
    audit.record_now(actor=SYSTEM, action="connection.reauth_required", target_type="connection",
                     target_id=str(conn_id), details={"reason": reason[:200]})
    signals.emit(signals.connection_reauth_required, tenant=current_tenant(), connection_id=conn_id,
                 reason=reason)


def expiring(tokens: TokenSet, margin: float) -> bool:
    return tokens.expires_at is not None and tokens.expires_at - margin <= time.time()


def refresh_tokens(connection_id, *, stale_access_token: str | None = None) -> TokenSet:
    """Refresh under a Redis lock so two workers never spend the same (rotating) refresh token. Whoever
    waited re-reads the row and uses the token the first one stored."""
    ident = parse_connection_id(connection_id)
    try:
        lock = redis_client().lock(tenant_key("token-refresh", str(ident)), timeout=60, blocking_timeout=45)
        acquired = lock.acquire()
    except Exception as exc:
        raise Unavailable(f"cannot coordinate a token refresh right now ({type(exc).__name__})") from None
    if not acquired:
        raise Unavailable("another worker is still refreshing this connection's token")
    try:
        conn = get_connection(ident)
        if conn.status == "reauth_required":
            raise ReauthRequired(provider=conn.provider, detail=conn.last_error or "re-authorisation required")
        tokens = tokens_of(conn)
        if tokens is None:
            raise ConnectionNotUsable("this connection has not been authorized yet")
        if not (expiring(tokens, settings().token_refresh_margin)
                or (stale_access_token and hmac_equal(stale_access_token, tokens.access_token))):
            return tokens  # someone refreshed it while we waited
        try:
            fresh = connector(conn.provider).refresh(app_credentials(conn.provider, conn), tokens, conn.options)
        except ReauthRequired as exc:
            metrics.token_refresh_failures.labels(conn.provider).inc()
            mark_reauth(ident, f"the provider refused the refresh: {exc}")
            raise
        except ConnectorError:
            metrics.token_refresh_failures.labels(conn.provider).inc()
            raise
        metrics.token_refreshes.labels(conn.provider).inc()
        with tenant_transaction() as session:
            row = session.get(Connection, ident, with_for_update=True)
            store_tokens(row, fresh)
        return fresh
    finally:
        try:
            lock.release()
        except Exception:
            pass
