"""Connections as rows: create (with the hook endpoint and the account index entry in the catalog), read,
list, change, bind an account, pause and resume, delete (revoke, wipe every secret, unroute). One provider
account belongs to one tenant.

A paused connection keeps everything (tokens, account, endpoint) but Zixly stops acting through it: its webhooks
are still verified and kept (core.inbound) yet start no job, its scheduled workflows are skipped, and any call or
write through it is refused (core.connections.api_calls: "connection is paused"), so what failed meanwhile can
be retried or replayed once it is resumed."""
from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.exc import IntegrityError

from connectors.errors import InvalidOptions
from core.connections import quota
from core.connections.errors import AccountAlreadyConnected, ConnectionNotFound, InvalidConnectionOptions
from core.connections.models import Connection
from core.connections.providers import WEBHOOK_ONLY, app_credentials, connector, options_message
from core.connections.sealing import seal, secret_item, token_hash, tokens_of
from core.events import catalogue, recorder
from core.platform import audit, signals
from core.platform.actors import Actor
from core.platform.errors import Conflict, Invalid
from core.platform.ids import parse_uuid
from tenancy import routecache
from tenancy.context import TenantRef, current_tenant
from tenancy.db import catalog_transaction, tenant_session, tenant_transaction
from tenancy.models import AccountIndex, WebhookEndpoint

log = logging.getLogger("zixly.connections")


def _now() -> datetime:
    return datetime.now(UTC)


SYSTEM = Actor("system", "connections")


def connected(row: Connection) -> dict:
    """The `connection.connected` event's data (core.events.catalogue)."""
    return {"connection_id": str(row.id), "provider": row.provider, "account_id": row.account_id}


def parse_connection_id(value) -> uuid.UUID:
    return parse_uuid(value, ConnectionNotFound, str(value))


def register_account(session, tenant: TenantRef, conn_id, provider: str, account_id: str) -> None:
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
    """Store a connection with its hook endpoint (and account index entry); return it and its hook token.
    Refused with PlanLimitReached (409) when the plan's connections or endpoints are all taken
    (core.connections.quota)."""
    tenant = current_tenant()
    conn_id = uuid.uuid4()
    token = "wh_" + secrets.token_urlsafe(32)
    items = [secret_item(s) for s in (webhook_secrets or [])]
    conn = Connection(id=conn_id, provider=provider, account_id=account_id, name=name, options=options or {},
                      status=status, webhook_secrets_sealed=seal(conn_id, "webhook_secrets", items),
                      hook_token_sealed=seal(conn_id, "hook_token", token),
                      authorized_at=_now() if status == "active" else None)
    if app:
        conn.app_client_id = app["client_id"]
        conn.app_secret_sealed = seal(conn_id, "app_secret", app["client_secret"])
    plan = quota.plan_quota(tenant)
    with tenant_transaction() as session:
        quota.check_connections(session, tenant, plan)
        session.add(conn)
    try:
        with catalog_transaction() as session:
            quota.check_endpoints(session, tenant, plan)
            session.add(WebhookEndpoint(token_hash=token_hash(token), tenant_id=tenant.id, connection_id=conn_id,
                                        provider=provider))
            if account_id:
                register_account(session, tenant, conn_id, provider, account_id)
    except (IntegrityError, AccountAlreadyConnected, quota.PlanLimitReached) as exc:
        with tenant_transaction() as session:
            session.execute(delete(Connection).where(Connection.id == conn_id))
        if isinstance(exc, quota.PlanLimitReached):
            raise
        raise AccountAlreadyConnected(f"{provider} account {account_id} is already connected") from None
    return conn, token


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


def select_account(connection_id, account_id: str) -> Connection:
    conn = get_connection(connection_id)
    if conn.status != "select_account":
        raise Conflict("this connection is not waiting for an account choice")
    choices = {c["account_id"]: c for c in conn.accounts or []}
    if account_id not in choices:
        raise Invalid(f"account_id must be one of: {', '.join(choices)}")
    tenant = current_tenant()
    with catalog_transaction() as session:
        register_account(session, tenant, conn.id, conn.provider, account_id)
    with tenant_transaction() as session:
        row = session.get(Connection, conn.id, with_for_update=True)
        row.status, row.account_id, row.account_name = "active", account_id, choices[account_id].get("name")
        row.accounts, row.authorized_at, row.updated_at = None, _now(), _now()
        recorder.record(session, catalogue.CONNECTION_CONNECTED, connected(row), connection_id=row.id)
    signals.emit(signals.connection_activated, tenant=tenant, connection_id=conn.id)
    return get_connection(conn.id)


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
                raise InvalidConnectionOptions(options_message(exc)) from None
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


PAUSED = "paused"


def pause_connection(connection_id, *, actor: Actor) -> Connection:
    """active -> paused (409 from any other status)."""
    return _set_status(connection_id, actor=actor, from_status="active", to=PAUSED, action="connection.paused")


def resume_connection(connection_id, *, actor: Actor) -> Connection:
    """paused -> active (409 from any other status)."""
    return _set_status(connection_id, actor=actor, from_status=PAUSED, to="active", action="connection.resumed")


def _set_status(connection_id, *, actor: Actor, from_status: str, to: str, action: str) -> Connection:
    ident = get_connection(connection_id).id
    with tenant_transaction() as session:
        row = session.get(Connection, ident, with_for_update=True)
        if row.status != from_status:
            raise Conflict(f"a {row.status} connection cannot become {to}; only a {from_status} one can")
        row.status, row.updated_at = to, _now()
    audit.record_now(actor=actor, action=action, target_type="connection", target_id=str(ident))
    return get_connection(ident)


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


def note_error(conn_id, message: str) -> None:
    with tenant_transaction() as session:
        row = session.get(Connection, conn_id, with_for_update=True)
        if row is not None:
            row.last_error, row.updated_at = message[:500], _now()
