"""Tenant connections to providers: OAuth consent, sealed tokens with locked refresh, the provider-account
index the app-level webhooks route by, and each connection's webhook endpoint and rotating secrets.

The provider side (URLs, token exchange, API calls) lives in `connectors/`; this module adds the tenancy,
the storage and the rules: one provider account belongs to one tenant; secrets never leave sealed except
once, to the admin who created them; a refresh the provider refuses stops the connection, it does not
retry forever.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from connectors.env import ConnectorEnv
from connectors.errors import ConnectorError, InvalidOptions, Permanent, RateLimited, ReauthRequired
from connectors.oauth import AccountInfo, ApiContext, AppCredentials, TokenSet
from connectors.registry import CONNECTORS, UnknownProvider, get_connector
from core.platform import audit, crypto, metrics, signals
from core.platform.actors import Actor
from core.platform.errors import BadRequest, Conflict, Invalid, NotFound, Unavailable, UpstreamFailed
from core.connections.models import Connection
from core.platform.runtime import aws_client, redis_client, settings
from tenancy import routecache
from tenancy.apikeys import tenant_ref
from tenancy.context import TenantRef, current_tenant, tenant_context, tenant_key
from tenancy.db import catalog_session, catalog_transaction, tenant_session, tenant_transaction
from tenancy.models import AccountIndex, Tenant, WebhookEndpoint

log = logging.getLogger("zixly.connections")
SYSTEM = Actor("system", "connections")
STATE_TTL = 600
MAX_WEBHOOK_SECRETS = 3
WEBHOOK_ONLY = ("custom",)  # Standard Webhooks senders: no OAuth, active at once with a generated secret


class AccountAlreadyConnected(Conflict):
    code = "account-already-connected"


class ConnectionNotFound(NotFound):
    code = "connection-not-found"


class ConnectionNotUsable(Conflict):
    code = "connection-not-usable"


class InvalidConnectionOptions(Invalid):
    code = "invalid-connection-options"


class OAuthStateInvalid(BadRequest):
    code = "oauth-state-invalid"


class ProviderNotConfigured(Invalid):
    """Zixly has no app of its own for this provider here: the request can still succeed with the tenant's own
    app (`app.client_id`, `app.client_secret`), so this is the caller's to fix (422), not an outage."""

    code = "provider-not-configured"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def parse_connection_id(value) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ConnectionNotFound(str(value)) from None


# -- sealed fields --------------------------------------------------------------------------------------------

def _context(conn_id, field: str) -> str:
    return f"connection:{conn_id}:{field}"


def _seal(conn_id, field: str, value) -> str:
    return crypto.keyring().seal_json(value, _context(conn_id, field))


def _open(conn: Connection, field: str):
    sealed = getattr(conn, f"{field}_sealed")
    return None if sealed is None else crypto.keyring().open_json(sealed, _context(conn.id, field))


def webhook_secrets(conn: Connection) -> list[dict]:
    return _open(conn, "webhook_secrets") or []


def webhook_secret_values(conn: Connection) -> list[str]:
    return [item["secret"] for item in webhook_secrets(conn)]


def hook_token(conn: Connection) -> str | None:
    return _open(conn, "hook_token")


def tokens_of(conn: Connection) -> TokenSet | None:
    raw = _open(conn, "tokens")
    return None if raw is None else TokenSet.from_dict(raw)


def _store_tokens(conn: Connection, tokens: TokenSet) -> None:
    conn.tokens_sealed = _seal(conn.id, "tokens", tokens.to_dict())
    conn.token_expires_at = (datetime.fromtimestamp(tokens.expires_at, UTC) if tokens.expires_at else None)
    conn.updated_at = _now()


SEALED_FIELDS = ("tokens", "app_secret", "webhook_secrets", "hook_token")


def reseal(conn: Connection, ring: crypto.Keyring) -> bool:
    """Re-seal every secret of the row under the primary key; True when something changed."""
    changed = False
    for field in SEALED_FIELDS:
        sealed = getattr(conn, f"{field}_sealed")
        if ring.needs_rotation(sealed):
            setattr(conn, f"{field}_sealed", ring.reseal(sealed, _context(conn.id, field)))
            changed = True
    return changed


# -- provider plumbing ----------------------------------------------------------------------------------------

_response_hooks: list = [metrics.observe_outbound]


def _on_response(provider, method, status, seconds) -> None:
    for hook in _response_hooks:
        try:
            hook(provider, method, status, seconds)
        except Exception:  # metrics must never break a provider call
            log.debug("response hook failed", exc_info=True)


def add_response_hook(hook) -> None:
    """Also call `hook(provider, method, status, seconds)` after every provider call (the delivery records)."""
    _response_hooks.append(hook)


def connector_env() -> ConnectorEnv:
    return ConnectorEnv(simulator_url=settings().provider_simulator_url, on_response=_on_response)


def connector(provider: str):
    try:
        return get_connector(provider, connector_env())
    except UnknownProvider:
        raise Invalid(f"unknown provider {provider!r}; known: {', '.join(sorted(CONNECTORS))}") from None


_app_cache: dict[str, tuple[float, dict]] = {}
_app_lock = threading.Lock()


def _secret_manager_credentials() -> dict:
    secret_id = settings().provider_credentials_secret_id
    with _app_lock:
        cached = _app_cache.get(secret_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    try:
        doc = json.loads(aws_client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
    except Exception as exc:
        raise ProviderNotConfigured(f"provider credentials unavailable: {type(exc).__name__}") from None
    with _app_lock:
        _app_cache[secret_id] = (time.monotonic() + 300, doc)
    return doc


def app_credentials(provider: str, conn: Connection | None = None) -> AppCredentials:
    """The tenant's own app when it brought one, else Zixly's app for the provider."""
    if conn is not None and conn.app_client_id:
        return AppCredentials(conn.app_client_id, _open(conn, "app_secret") or "")
    found = settings().provider_credentials.get(provider)
    if found is None and settings().provider_credentials_secret_id:
        entry = _secret_manager_credentials().get(provider)
        found = (entry["client_id"], entry["client_secret"]) if entry else None
    if not found:
        raise ProviderNotConfigured(f"Zixly has no {provider} app configured; bring your own app "
                                    "(app.client_id and app.client_secret)")
    return AppCredentials(*found)


def redirect_uri() -> str:
    base = (settings().public_base_url or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/v1/oauth/callback"


# -- creating connections -------------------------------------------------------------------------------------

def _new_secret(provider: str) -> str:
    raw = secrets.token_bytes(24)
    return "whsec_" + base64.b64encode(raw).decode() if provider in WEBHOOK_ONLY else secrets.token_urlsafe(32)


def _secret_item(secret: str) -> dict:
    return {"id": "ws_" + secrets.token_hex(6), "secret": secret, "created_at": _now().isoformat()}


def _register_account(session, tenant: TenantRef, conn_id, provider: str, account_id: str) -> None:
    owner = session.scalar(select(AccountIndex).where(AccountIndex.provider == provider,
                                                      AccountIndex.account_id == account_id).with_for_update())
    if owner is not None and (owner.tenant_id, owner.connection_id) != (tenant.id, conn_id):
        raise AccountAlreadyConnected(f"this {provider} account is already connected"
                                      + (" by this tenant" if owner.tenant_id == tenant.id else ""))
    if owner is None:
        session.add(AccountIndex(provider=provider, account_id=account_id, tenant_id=tenant.id,
                                 connection_id=conn_id))


def create_connection(*, provider: str, account_id: str | None = None, name: str = "",
                      webhook_secrets: list[str] | None = None, options: dict | None = None,
                      status: str = "active", app: dict | None = None) -> tuple[Connection, str]:
    """Store a connection with its hook endpoint (and account index entry); return it and its hook token."""
    tenant = current_tenant()
    conn_id = uuid.uuid4()
    token = "wh_" + secrets.token_urlsafe(32)
    items = [_secret_item(s) for s in (webhook_secrets or [])]
    conn = Connection(id=conn_id, provider=provider, account_id=account_id, name=name, options=options or {},
                      status=status, webhook_secrets_sealed=_seal(conn_id, "webhook_secrets", items),
                      hook_token_sealed=_seal(conn_id, "hook_token", token),
                      authorized_at=_now() if status == "active" else None)
    if app:
        conn.app_client_id = app["client_id"]
        conn.app_secret_sealed = _seal(conn_id, "app_secret", app["client_secret"])
    with tenant_transaction() as session:
        session.add(conn)
    try:
        with catalog_transaction() as session:
            session.add(WebhookEndpoint(token_hash=token_hash(token), tenant_id=tenant.id, connection_id=conn_id,
                                        provider=provider))
            if account_id:
                _register_account(session, tenant, conn_id, provider, account_id)
    except (IntegrityError, AccountAlreadyConnected):
        with tenant_transaction() as session:
            session.execute(delete(Connection).where(Connection.id == conn_id))
        raise AccountAlreadyConnected(f"{provider} account {account_id} is already connected") from None
    return conn, token


@dataclass
class Started:
    connection: Connection
    hook_token: str
    authorize_url: str | None
    new_secret: dict | None


def start_connection(*, provider: str, name: str, options: dict, actor: Actor, app: dict | None = None,
                     webhook_secret: str | None = None) -> Started:
    """Validate, store a pending connection, and hand back the provider's consent URL (or, for webhook-only
    senders, an active connection with its first generated secret)."""
    if provider in WEBHOOK_ONLY:
        if options:
            raise InvalidConnectionOptions("this provider takes no options")
        secret = webhook_secret or _new_secret(provider)
        conn, token = create_connection(provider=provider, name=name, webhook_secrets=[secret], status="active")
        audit.record_now(actor=actor, action="connection.created", target_type="connection",
                         target_id=str(conn.id), details={"provider": provider})
        return Started(conn, token, None, webhook_secrets(conn)[0])
    plugin = connector(provider)
    try:
        options = plugin.validate_options(dict(options or {}))
    except InvalidOptions as exc:
        raise InvalidConnectionOptions(_options_message(exc)) from None
    if app is None:
        app_credentials(provider)  # fail now, before storing anything, if Zixly has no app for it
    conn, token = create_connection(provider=provider, name=name, options=options, status="pending", app=app,
                                    webhook_secrets=[webhook_secret] if webhook_secret else None)
    url = authorize(conn)
    audit.record_now(actor=actor, action="connection.created", target_type="connection", target_id=str(conn.id),
                     details={"provider": provider, "own_app": bool(app)})
    return Started(conn, token, url, None)


def _options_message(exc: InvalidOptions) -> str:
    errors = getattr(exc, "errors", None) or {}
    return "; ".join(f"{k}: {v}" for k, v in errors.items()) or str(exc)


def authorize(conn: Connection) -> str:
    """A fresh consent URL; its state is single-use, bound to tenant, connection and PKCE verifier, 10 min."""
    plugin = connector(conn.provider)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if plugin.supports_pkce else None
    record = {"tenant_id": current_tenant().id, "connection_id": str(conn.id), "verifier": verifier,
              "redirect_uri": redirect_uri()}
    try:
        redis_client().set(f"zixly:oauth-state:{token_hash(state)}", json.dumps(record), ex=STATE_TTL)
    except Exception as exc:
        raise Unavailable(f"cannot start the consent flow right now ({type(exc).__name__})") from None
    return plugin.authorization_url(app_credentials(conn.provider, conn), redirect_uri=record["redirect_uri"],
                                    state=state, code_verifier=verifier, options=conn.options)


def reauthorize(connection_id, *, actor: Actor) -> tuple[Connection, str]:
    conn = get_connection(connection_id)
    if conn.provider in WEBHOOK_ONLY:
        raise Conflict("this connection has no OAuth consent")
    audit.record_now(actor=actor, action="connection.reauthorize_started", target_type="connection",
                     target_id=str(conn.id))
    return conn, authorize(conn)


def _pop_state(state: str) -> dict:
    if not state or len(state) > 512:
        raise OAuthStateInvalid("missing or malformed state")
    try:
        raw = redis_client().getdel(f"zixly:oauth-state:{token_hash(state)}")
    except Exception as exc:
        raise Unavailable(f"cannot check the consent state right now ({type(exc).__name__})") from None
    if raw is None:
        raise OAuthStateInvalid("unknown, expired or already used state; start the connection again")
    return json.loads(raw)


@dataclass
class CallbackResult:
    tenant: TenantRef
    connection: Connection


def complete_oauth(params: dict) -> CallbackResult:
    """The provider sent the user back: check the state (single use), exchange the code, bind the account."""
    record = _pop_state(params.get("state") or "")
    with catalog_session() as session:
        tenant_row = session.get(Tenant, int(record["tenant_id"]))
    if tenant_row is None or tenant_row.status != "active":
        raise OAuthStateInvalid("the tenant of this consent is not active")
    tenant = tenant_ref(tenant_row)
    with tenant_context(tenant):
        conn = get_connection(record["connection_id"])
        if params.get("error"):
            _note_error(conn.id, f"consent refused: {params.get('error')}")
            raise BadRequest(f"the provider reported {params.get('error')!r}: "
                             f"{(params.get('error_description') or '')[:200]}")
        if not params.get("code"):
            raise OAuthStateInvalid("the callback carries no authorization code")
        plugin = connector(conn.provider)
        try:
            tokens = plugin.exchange_code(app_credentials(conn.provider, conn), code=params["code"],
                                          redirect_uri=record["redirect_uri"], code_verifier=record["verifier"],
                                          options=conn.options, params=dict(params))
            accounts = plugin.list_accounts(ApiContext(tokens, conn.options, None), conn.options)
        except InvalidOptions as exc:
            raise BadRequest(_options_message(exc)) from None
        except (Permanent, ReauthRequired) as exc:
            _note_error(conn.id, f"code exchange refused: {exc}")
            raise BadRequest(f"the provider refused the authorization code ({exc})") from None
        except ConnectorError as exc:
            raise UpstreamFailed(f"{conn.provider} did not complete the exchange ({type(exc).__name__})") from None
        conn = _bind(conn, tokens, accounts)
    return CallbackResult(tenant, conn)


def _note_error(conn_id, message: str) -> None:
    with tenant_transaction() as session:
        row = session.get(Connection, conn_id, with_for_update=True)
        if row is not None:
            row.last_error, row.updated_at = message[:500], _now()


def _bind(conn: Connection, tokens: TokenSet, accounts: list[AccountInfo]) -> Connection:
    wanted = conn.account_id or (conn.options or {}).get("account_id")
    chosen = None
    if wanted:
        chosen = next((a for a in accounts if a.account_id == wanted), None)
        if chosen is None:
            _note_error(conn.id, "the consented account is not the one this connection is bound to")
            raise Conflict("the account you consented to is not the one this connection is bound to")
    elif len(accounts) == 1:
        chosen = accounts[0]
    elif not accounts:
        _note_error(conn.id, "the provider returned no account for this consent")
        raise BadRequest("the provider returned no account for this consent")
    tenant = current_tenant()
    if chosen is not None:
        with catalog_transaction() as session:
            _register_account(session, tenant, conn.id, conn.provider, chosen.account_id)
    with tenant_transaction() as session:
        row = session.get(Connection, conn.id, with_for_update=True)
        _store_tokens(row, tokens)
        row.last_error = None
        if chosen is None:
            row.status = "select_account"
            row.accounts = [{"account_id": a.account_id, "name": a.name} for a in accounts]
        else:
            row.status, row.account_id, row.account_name = "active", chosen.account_id, chosen.name
            row.accounts, row.authorized_at = None, _now()
    conn = get_connection(conn.id)
    audit.record_now(actor=SYSTEM, action="connection.authorized", target_type="connection",
                     target_id=str(conn.id), details={"status": conn.status, "account_id": conn.account_id})
    if conn.status == "active":
        signals.emit(signals.connection_activated, tenant=tenant, connection_id=conn.id)
    return conn


def select_account(connection_id, account_id: str) -> Connection:
    conn = get_connection(connection_id)
    if conn.status != "select_account":
        raise Conflict("this connection is not waiting for an account choice")
    choices = {c["account_id"]: c for c in conn.accounts or []}
    if account_id not in choices:
        raise Invalid(f"account_id must be one of: {', '.join(choices)}")
    tenant = current_tenant()
    with catalog_transaction() as session:
        _register_account(session, tenant, conn.id, conn.provider, account_id)
    with tenant_transaction() as session:
        row = session.get(Connection, conn.id, with_for_update=True)
        row.status, row.account_id, row.account_name = "active", account_id, choices[account_id].get("name")
        row.accounts, row.authorized_at, row.updated_at = None, _now(), _now()
    signals.emit(signals.connection_activated, tenant=tenant, connection_id=conn.id)
    return get_connection(conn.id)


# -- reading, changing, deleting ------------------------------------------------------------------------------

def get_connection(connection_id, *, include_deleted: bool = False) -> Connection:
    ident = parse_connection_id(connection_id)
    with tenant_session() as session:
        conn = session.get(Connection, ident)
    if conn is None or (conn.deleted_at is not None and not include_deleted):
        raise ConnectionNotFound(str(connection_id))
    return conn


def list_connections(*, limit: int, after: str | None = None, provider: str | None = None,
                     status: str | None = None) -> list[Connection]:
    query = select(Connection).where(Connection.deleted_at.is_(None))
    if provider:
        query = query.where(Connection.provider == provider)
    if status:
        query = query.where(Connection.status == status)
    if after:
        pivot = parse_connection_id(after)
        sub = select(Connection.created_at).where(Connection.id == pivot).scalar_subquery()
        query = query.where(or_(Connection.created_at > sub,
                                and_(Connection.created_at == sub, Connection.id > pivot)))
    with tenant_session() as session:
        return list(session.scalars(query.order_by(Connection.created_at, Connection.id).limit(limit)))


def update_connection(connection_id, *, actor: Actor, name: str | None = None, options: dict | None = None,
                      account_id: str | None = None) -> Connection:
    conn = get_connection(connection_id)
    if account_id is not None:
        conn = select_account(conn.id, account_id)
    if options is not None:
        merged = {**(conn.options or {}), **options}
        if conn.provider not in WEBHOOK_ONLY:
            try:
                merged = connector(conn.provider).validate_options(merged)
            except InvalidOptions as exc:
                raise InvalidConnectionOptions(_options_message(exc)) from None
        for fixed in ("shop", "instance_url"):
            if conn.status != "pending" and (conn.options or {}).get(fixed) != merged.get(fixed):
                raise Conflict(f"{fixed} cannot change once the connection is authorized; create a new one")
    with tenant_transaction() as session:
        row = session.get(Connection, conn.id, with_for_update=True)
        if name is not None:
            row.name = name
        if options is not None:
            row.options = merged
        row.updated_at = _now()
    audit.record_now(actor=actor, action="connection.updated", target_type="connection", target_id=str(conn.id),
                     details={"fields": [k for k, v in (("name", name), ("options", options),
                                                       ("account_id", account_id)) if v is not None]})
    return get_connection(conn.id)


def delete_connection(connection_id, *, actor: Actor | None = None) -> bool:
    """Revoke at the provider where it can, then wipe every secret and unroute the connection.
    The row stays (events keep their connection) but is gone from every read. True if the provider revoked."""
    tenant = current_tenant()
    conn = get_connection(connection_id)
    revoked = False
    tokens = tokens_of(conn)
    if tokens is not None and conn.provider not in WEBHOOK_ONLY:
        try:
            revoked = connector(conn.provider).revoke(app_credentials(conn.provider, conn), tokens, conn.options)
        except Exception as exc:  # the tokens are wiped regardless; say so in the audit
            log.warning("revoking %s connection at the provider failed: %s", conn.provider, type(exc).__name__)
    with tenant_transaction() as session:
        row = session.get(Connection, conn.id, with_for_update=True)
        row.status, row.deleted_at, row.updated_at = "revoked", _now(), _now()
        row.tokens_sealed = row.app_secret_sealed = row.webhook_secrets_sealed = row.hook_token_sealed = None
        row.token_expires_at = None
    with catalog_transaction() as session:
        for model in (WebhookEndpoint, AccountIndex):
            session.execute(delete(model).where(model.tenant_id == tenant.id, model.connection_id == conn.id))
    routecache.forget_all()
    audit.record_now(actor=actor or SYSTEM, action="connection.deleted", target_type="connection",
                     target_id=str(conn.id), details={"revoked_at_provider": revoked})
    return revoked


# -- webhook secrets ------------------------------------------------------------------------------------------

def set_webhook_secrets(connection_id, secrets_: list[str]) -> None:
    with tenant_transaction() as session:
        conn = session.get(Connection, parse_connection_id(connection_id), with_for_update=True)
        if conn is None:
            raise ConnectionNotFound(str(connection_id))
        conn.webhook_secrets_sealed = _seal(conn.id, "webhook_secrets", [_secret_item(s) for s in secrets_])


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
        item = _secret_item(secret or _new_secret(conn.provider))
        conn.webhook_secrets_sealed = _seal(conn.id, "webhook_secrets", items + [item])
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
        conn.webhook_secrets_sealed = _seal(conn.id, "webhook_secrets", kept)
        conn.updated_at = _now()
    audit.record_now(actor=actor, action="connection.webhook_secret_retired", target_type="connection",
                     target_id=str(ident), details={"secret_id": secret_id})


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# -- using a connection ---------------------------------------------------------------------------------------

def _expiring(tokens: TokenSet, margin: float) -> bool:
    return tokens.expires_at is not None and tokens.expires_at - margin <= time.time()


def _mark_reauth(conn_id, reason: str) -> None:
    with tenant_transaction() as session:
        row = session.get(Connection, conn_id, with_for_update=True)
        row.status, row.last_error, row.updated_at = "reauth_required", reason[:500], _now()
    audit.record_now(actor=SYSTEM, action="connection.reauth_required", target_type="connection",
                     target_id=str(conn_id), details={"reason": reason[:200]})
    signals.emit(signals.connection_reauth_required, tenant=current_tenant(), connection_id=conn_id,
                 reason=reason)


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
        if not (_expiring(tokens, settings().token_refresh_margin)
                or (stale_access_token and hmac_equal(stale_access_token, tokens.access_token))):
            return tokens  # someone refreshed it while we waited
        try:
            fresh = connector(conn.provider).refresh(app_credentials(conn.provider, conn), tokens, conn.options)
        except ReauthRequired as exc:
            metrics.token_refresh_failures.labels(conn.provider).inc()
            _mark_reauth(ident, f"the provider refused the refresh: {exc}")
            raise
        except ConnectorError:
            metrics.token_refresh_failures.labels(conn.provider).inc()
            raise
        metrics.token_refreshes.labels(conn.provider).inc()
        with tenant_transaction() as session:
            row = session.get(Connection, ident, with_for_update=True)
            _store_tokens(row, fresh)
        return fresh
    finally:
        try:
            lock.release()
        except Exception:
            pass


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
    if _expiring(tokens, settings().token_refresh_margin):
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
            _mark_reauth(conn.id, "the provider refused the access token and there is no refresh token")
            raise
        tokens = refresh_tokens(conn.id, stale_access_token=ctx.tokens.access_token)
        try:
            return getattr(plugin, operation)(ApiContext(tokens, ctx.options, ctx.account_id), *args, **kwargs)
        except ReauthRequired as exc:
            _mark_reauth(conn.id, f"the provider refuses fresh tokens: {exc}")
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


# -- routing lookups (catalog) --------------------------------------------------------------------------------

def resolve_endpoint(token: str) -> tuple[TenantRef, uuid.UUID, str] | None:
    key = ("endpoint", token_hash(token))
    route = routecache.lookup(key)
    if route is not None:
        return route
    with catalog_session() as session:
        row = session.execute(select(WebhookEndpoint, Tenant).join(Tenant, Tenant.id == WebhookEndpoint.tenant_id)
                              .where(WebhookEndpoint.token_hash == key[1])).first()
    if row is None:
        return None
    endpoint, tenant = row
    route = (tenant_ref(tenant), endpoint.connection_id, endpoint.provider)
    routecache.remember(key, route)
    return route


def resolve_accounts(provider: str, account_ids: set[str]) -> dict[str, tuple[TenantRef, uuid.UUID]]:
    """The owner (tenant, connection) of each account that has one (tenancy.routecache: up to 2 s behind)."""
    found, missing = {}, set()
    for account in account_ids:
        route = routecache.lookup(("account", provider, account))
        if route is None:
            missing.add(account)
        else:
            found[account] = route
    if not missing:
        return found
    with catalog_session() as session:
        rows = session.execute(select(AccountIndex, Tenant).join(Tenant, Tenant.id == AccountIndex.tenant_id)
                               .where(AccountIndex.provider == provider,
                                      AccountIndex.account_id.in_(missing))).all()
    for index, tenant in rows:
        found[index.account_id] = (tenant_ref(tenant), index.connection_id)
        routecache.remember(("account", provider, index.account_id), found[index.account_id])
    return found


# -- data-key rotation ----------------------------------------------------------------------------------------

def reseal_tenant_connections() -> int:
    """Re-seal this tenant's connection secrets that are not under the primary data key; returns rows changed.
    Each row is re-sealed under its own row lock, so running connections keep working throughout."""
    ring = crypto.keyring()
    current = f"{crypto.PREFIX}:{ring.primary}:%"
    stale = or_(*[and_(getattr(Connection, f"{f}_sealed").isnot(None),
                       getattr(Connection, f"{f}_sealed").notlike(current)) for f in SEALED_FIELDS])
    with tenant_session() as session:
        ids = list(session.scalars(select(Connection.id).where(stale)))
    changed = 0
    for ident in ids:
        with tenant_transaction() as session:
            row = session.get(Connection, ident, with_for_update=True)
            if row is not None and reseal(row, ring):
                changed += 1
    return changed


def rotate_data_keys(progress=None) -> dict:
    """Re-seal every tenant's secrets under the primary key (all tenants but archived ones)."""
    with catalog_session() as session:
        tenants = [tenant_ref(t) for t in session.scalars(
            select(Tenant).where(Tenant.status.in_(("active", "suspended"))).order_by(Tenant.slug))]
    summary = {"tenants": len(tenants), "connections_resealed": 0, "failed": {}}
    for tenant in tenants:
        try:
            with tenant_context(tenant):
                summary["connections_resealed"] += reseal_tenant_connections()
        except Exception as exc:  # one tenant's failure is reported, the others still rotate
            summary["failed"][tenant.slug] = f"{type(exc).__name__}: {exc}"[:300]
        if progress:
            progress(tenant.slug)
    return summary
