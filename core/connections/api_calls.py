"""Calling a provider through a connection: fresh tokens (refreshed ahead of expiry), one refresh and one
retry on a 401, and the connection test."""
from __future__ import annotations

import time

from connectors.errors import ConnectorError, RateLimited, ReauthRequired
from connectors.oauth import ApiContext
from core.connections.errors import ConnectionNotUsable
from core.connections.providers import WEBHOOK_ONLY, connector
from core.connections.refresh import expiring, mark_reauth, refresh_tokens
from core.connections.sealing import tokens_of
from core.connections.store import get_connection
from core.platform import audit
from core.platform.actors import Actor
from core.platform.runtime import settings


def api_context(connection_id) -> ApiContext:
    """Tokens ready to use (refreshed ahead of expiry) for an active connection."""
    conn = get_connection(connection_id)
    if conn.status == "reauth_required":
        raise ReauthRequired(provider=conn.provider, detail=conn.last_error or "re-authorisation required")
    if conn.status != "active":
        raise ConnectionNotUsable(f"connection is {conn.status}")
    tokens = tokens_of(conn)
    if tokens is None:
        raise ConnectionNotUsable("this connection holds no tokens")
    if expiring(tokens, settings().token_refresh_margin):
        tokens = refresh_tokens(conn.id)
    return ApiContext(tokens, conn.options or {}, conn.account_id)


def call(connection_id, operation: str, *args, **kwargs):
    """Run a connector operation with fresh tokens; a 401 refreshes once and retries once."""
    conn = get_connection(connection_id)
    plugin = connector(conn.provider)
    ctx = api_context(conn.id)
    try:
        return getattr(plugin, operation)(ctx, *args, **kwargs)
    except ReauthRequired:
        if not tokens_of(get_connection(conn.id)).refresh_token:
            mark_reauth(conn.id, "the provider refused the access token and there is no refresh token")
            raise
        tokens = refresh_tokens(conn.id, stale_access_token=ctx.tokens.access_token)
        try:
            return getattr(plugin, operation)(ApiContext(tokens, ctx.options, ctx.account_id), *args, **kwargs)
        except ReauthRequired as exc:
            mark_reauth(conn.id, f"the provider refuses fresh tokens: {exc}")
            raise


def test_connection(connection_id, *, actor: Actor) -> dict:
    conn = get_connection(connection_id)
    if conn.provider in WEBHOOK_ONLY:
        return {"ok": True, "provider": conn.provider, "detail": "webhook-only connection; nothing to call"}
    started = time.monotonic()
    try:
        result = call(conn.id, "test")
        outcome = {"ok": True, "provider": conn.provider, "account_id": conn.account_id,
                   "detail": "authenticated call succeeded", "result": result}
    except ReauthRequired as exc:
        outcome = {"ok": False, "provider": conn.provider, "error": "reauth-required", "detail": str(exc)}
    except RateLimited as exc:
        outcome = {"ok": False, "provider": conn.provider, "error": "rate-limited", "retry_after": exc.retry_after,
                   "detail": str(exc)}
    except ConnectorError as exc:
        outcome = {"ok": False, "provider": conn.provider, "error": type(exc).__name__.lower(), "detail": str(exc)}
    outcome["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    audit.record_now(actor=actor, action="connection.tested", target_type="connection", target_id=str(conn.id),
                     details={"ok": outcome["ok"]})
    return outcome
