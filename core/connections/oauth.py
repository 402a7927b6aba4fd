"""The OAuth consent flow: start (a single-use state bound to tenant, connection, PKCE verifier and, by default,
the initiating admin's browser; 10 min), the provider's callback (exchange the code, bind the account), and
re-authorisation.

Invariant: the state is spent by the first callback that names it, whatever happens next. A callback that comes
back to the wrong browser (see `consent_binding`) spends the state too: the authorization code it carries went
to someone other than the admin, so it must never become usable later (an attacker who learns the victim's
code cannot replay it from the right browser). The cost is that the rightful admin asks for a fresh consent.
A failed callback binds nothing and raises `ConsentFailed`, which names only the page stored with the state at
its start (see `consent_failures`), never one the callback's query carries.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.errors import ConnectorError, InvalidOptions, Permanent, ReauthRequired
from connectors.oauth import AccountInfo, ApiContext, TokenSet
from core.connections import consent_binding
from core.connections.consent_binding import BROWSER, BrowserCookie
from core.connections.consent_failures import RETURNING_STATE_PREFIX, ConsentFailed, reason_for
from core.connections.errors import ConsentFromAnotherBrowser, InvalidConnectionOptions, OAuthStateInvalid
from core.connections.models import Connection
from core.connections.providers import (
    WEBHOOK_ONLY,
    app_credentials,
    connector,
    new_secret,
    options_message,
    redirect_uri,
)
from core.connections.sealing import store_tokens, token_hash, webhook_secrets
from core.connections.store import (
    SYSTEM,
    connected,
    create_connection,
    get_connection,
    note_error,
    register_account,
)
from core.events import catalogue, recorder
from core.platform import audit, signals
from core.platform.actors import Actor
from core.platform.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound, Unavailable, UpstreamFailed
from core.platform.runtime import redis_client
from tenancy.apikeys import tenant_ref
from tenancy.context import TenantRef, current_tenant, tenant_context
from tenancy.db import catalog_session, catalog_transaction, tenant_transaction
from tenancy.models import Tenant


def _now() -> datetime:
    return datetime.now(UTC)


STATE_TTL = 600


@dataclass
class Authorization:
    """A consent to send the user to: the provider's URL and, in browser mode, the cookie to set with it."""

    url: str
    mode: str
    cookie: BrowserCookie | None


@dataclass
class Started:
    connection: Connection
    hook_token: str
    authorization: Authorization | None
    new_secret: dict | None


def start_connection(*, provider: str, name: str, options: dict, actor: Actor, app: dict | None = None,
                     webhook_secret: str | None = None, consent: str = BROWSER,
                     return_to: str | None = None) -> Started:
    """Validate, store a pending connection, and hand back the provider's consent (or, for webhook-only
    senders, an active connection with its first generated secret)."""
    _local_path(return_to)  # before anything is stored
    if provider in WEBHOOK_ONLY:
        if options:
            raise InvalidConnectionOptions("this provider takes no options")
        secret = webhook_secret or new_secret(provider)
        conn, token = create_connection(provider=provider, name=name, webhook_secrets=[secret], status="active")
        audit.record_now(actor=actor, action="connection.created", target_type="connection",
                         target_id=str(conn.id), details={"provider": provider})
        return Started(conn, token, None, webhook_secrets(conn)[0])
    plugin = connector(provider)
    try:
        options = plugin.validate_options(dict(options or {}))
    except InvalidOptions as exc:
        raise InvalidConnectionOptions(options_message(exc)) from None
    if app is None:
        app_credentials(provider)  # fail now, before storing anything, if Zixly has no app for it
    conn, token = create_connection(provider=provider, name=name, options=options, status="pending", app=app,
                                    webhook_secrets=[webhook_secret] if webhook_secret else None)
    authorization = authorize(conn, consent=consent, return_to=return_to)
    audit.record_now(actor=actor, action="connection.created", target_type="connection", target_id=str(conn.id),
                     details={"provider": provider, "own_app": bool(app), "consent": consent})
    return Started(conn, token, authorization, None)


def _local_path(return_to: str | None) -> str | None:
    """Where the callback sends the browser afterwards: a path on this site only, never another site."""
    if return_to is not None and (not return_to.startswith("/") or return_to.startswith(("//", "/\\"))):
        raise ValueError(f"return_to must be a path on this site, not {return_to!r}")
    return return_to


def authorize(conn: Connection, *, consent: str = BROWSER, return_to: str | None = None) -> Authorization:
    """A fresh consent; its state is single-use, bound to tenant, connection, PKCE verifier and (browser mode)
    the hash of the cookie handed to the caller, 10 min. `return_to`: the local page the callback redirects to
    (the console's), instead of answering JSON."""
    plugin = connector(conn.provider)
    state = (RETURNING_STATE_PREFIX if return_to else "") + secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if plugin.supports_pkce else None
    cookie = consent_binding.new_cookie(state) if consent == BROWSER else None
    record = {"tenant_id": current_tenant().id, "connection_id": str(conn.id), "verifier": verifier,
              "redirect_uri": redirect_uri(), "return_to": _local_path(return_to),
              **consent_binding.record_fields(consent, cookie)}
    try:
        redis_client().set(f"zixly:oauth-state:{token_hash(state)}", json.dumps(record), ex=STATE_TTL)
    except Exception as exc:
        raise Unavailable(f"cannot start the consent flow right now ({type(exc).__name__})") from None
    url = plugin.authorization_url(app_credentials(conn.provider, conn), redirect_uri=record["redirect_uri"],
                                   state=state, code_verifier=verifier, options=conn.options)
    return Authorization(url, consent, cookie)


def reauthorize(connection_id, *, actor: Actor, consent: str = BROWSER,
                return_to: str | None = None) -> tuple[Connection, Authorization]:
    _local_path(return_to)
    conn = get_connection(connection_id)
    if conn.provider in WEBHOOK_ONLY:
        raise Conflict("this connection has no OAuth consent")
    audit.record_now(actor=actor, action="connection.reauthorize_started", target_type="connection",
                     target_id=str(conn.id), details={"consent": consent})
    return conn, authorize(conn, consent=consent, return_to=return_to)


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
    return_to: str | None = None  # the local page the flow's initiator asked to land on


def complete_oauth(params: dict, *, browser_nonce: str | None = None) -> CallbackResult:
    """The provider sent the user back: check the state (single use) and the browser it came back to, exchange
    the code, bind the account. `browser_nonce`: the value of the flow's cookie, if the browser sent it.
    Raises `ConsentFailed` (the problem, its short reason and where the flow's initiator asked to land)."""
    state = params.get("state") or ""
    try:
        record = _pop_state(state)
    except (OAuthStateInvalid, Unavailable) as exc:
        raise ConsentFailed(exc, reason=reason_for(exc, {}),
                            from_site_page=state.startswith(RETURNING_STATE_PREFIX)) from exc
    try:
        return _complete(record, params, browser_nonce)
    except (BadRequest, Forbidden, Conflict, Invalid, NotFound, UpstreamFailed, Unavailable) as exc:
        raise ConsentFailed(exc, reason=reason_for(exc, params), return_to=record.get("return_to"),
                            connection_id=record["connection_id"], from_site_page=bool(record.get("return_to"))) \
            from exc


def _complete(record: dict, params: dict, browser_nonce: str | None) -> CallbackResult:
    with catalog_session() as session:
        tenant_row = session.get(Tenant, int(record["tenant_id"]))
    if tenant_row is None or tenant_row.status != "active":
        raise OAuthStateInvalid("the tenant of this consent is not active")
    tenant = tenant_ref(tenant_row)
    with tenant_context(tenant):
        conn = get_connection(record["connection_id"])
        _check_browser(conn, record, browser_nonce)
        if params.get("error"):
            note_error(conn.id, f"consent refused: {params.get('error')}")
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
            raise BadRequest(options_message(exc)) from None
        except (Permanent, ReauthRequired) as exc:
            note_error(conn.id, f"code exchange refused: {exc}")
            raise BadRequest(f"the provider refused the authorization code ({exc})") from None
        except ConnectorError as exc:
            raise UpstreamFailed(f"{conn.provider} did not complete the exchange ({type(exc).__name__})") from None
        conn = _bind(conn, tokens, accounts)
    return CallbackResult(tenant, conn, record.get("return_to"))


def _check_browser(conn: Connection, record: dict, browser_nonce: str | None) -> None:
    try:
        consent_binding.check(record, browser_nonce)
    except ConsentFromAnotherBrowser:
        note_error(conn.id, "a consent came back to a browser other than the one that started it; nothing bound")
        audit.record_now(actor=SYSTEM, action="connection.consent_refused", target_type="connection",
                         target_id=str(conn.id), details={"reason": "another browser"})
        raise


def _bind(conn: Connection, tokens: TokenSet, accounts: list[AccountInfo]) -> Connection:
    wanted = conn.account_id or (conn.options or {}).get("account_id")
    chosen = None
    if wanted:
        chosen = next((a for a in accounts if a.account_id == wanted), None)
        if chosen is None:
            note_error(conn.id, "the consented account is not the one this connection is bound to")
            raise Conflict("the account you consented to is not the one this connection is bound to")
    elif len(accounts) == 1:
        chosen = accounts[0]
    elif not accounts:
        note_error(conn.id, "the provider returned no account for this consent")
        raise BadRequest("the provider returned no account for this consent")
    tenant = current_tenant()
    if chosen is not None:
        with catalog_transaction() as session:
            register_account(session, tenant, conn.id, conn.provider, chosen.account_id)
    with tenant_transaction() as session:
        row = session.get(Connection, conn.id, with_for_update=True)
        store_tokens(row, tokens)
        row.last_error = None
        if chosen is None:
            row.status = "select_account"
            row.accounts = [{"account_id": a.account_id, "name": a.name} for a in accounts]
        else:
            row.status, row.account_id, row.account_name = "active", chosen.account_id, chosen.name
            row.accounts, row.authorized_at = None, _now()
            recorder.record(session, catalogue.CONNECTION_CONNECTED, connected(row), connection_id=row.id)
    conn = get_connection(conn.id)
    audit.record_now(actor=SYSTEM, action="connection.authorized", target_type="connection",
                     target_id=str(conn.id), details={"status": conn.status, "account_id": conn.account_id})
    if conn.status == "active":
        signals.emit(signals.connection_activated, tenant=tenant, connection_id=conn.id)
    return conn
