"""Tenant connections to providers, as far as inbound webhooks need them: the hook token, the account index,
and the webhook secrets (several active at once, so a secret can be rotated without downtime).
The OAuth side of connections is built on top of this."""
from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from core.errors import Conflict, NotFound
from core.models import Connection
from tenancy.apikeys import tenant_ref
from tenancy.context import TenantRef, current_tenant
from tenancy.db import catalog_session, catalog_transaction, tenant_session, tenant_transaction
from tenancy.models import AccountIndex, Tenant, WebhookEndpoint


class AccountAlreadyConnected(Conflict):
    code = "account-already-connected"


class ConnectionNotFound(NotFound):
    code = "connection-not-found"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_connection(*, provider: str, account_id: str | None = None, name: str = "",
                      webhook_secrets: list[str] | None = None) -> tuple[Connection, str]:
    """Create a connection; return it and its hook token (the path part of /v1/hooks/{token})."""
    tenant = current_tenant()
    with tenant_transaction() as session:
        conn = Connection(id=uuid.uuid4(), provider=provider, account_id=account_id, name=name,
                          webhook_secrets=list(webhook_secrets or []))
        session.add(conn)
    token = "wh_" + secrets.token_urlsafe(32)
    try:
        with catalog_transaction() as session:
            session.add(WebhookEndpoint(token_hash=token_hash(token), tenant_id=tenant.id, connection_id=conn.id,
                                        provider=provider))
            if account_id:
                session.add(AccountIndex(provider=provider, account_id=account_id, tenant_id=tenant.id,
                                         connection_id=conn.id))
    except IntegrityError:
        with tenant_transaction() as session:
            session.execute(delete(Connection).where(Connection.id == conn.id))
        raise AccountAlreadyConnected(f"{provider} account {account_id} is already connected") from None
    return conn, token


def delete_connection(connection_id) -> None:
    tenant = current_tenant()
    with tenant_transaction() as session:
        if session.execute(delete(Connection).where(Connection.id == connection_id)).rowcount == 0:
            raise ConnectionNotFound(str(connection_id))
    with catalog_transaction() as session:
        for model in (WebhookEndpoint, AccountIndex):
            session.execute(delete(model).where(model.tenant_id == tenant.id, model.connection_id == connection_id))


def get_connection(connection_id) -> Connection:
    with tenant_session() as session:
        conn = session.get(Connection, connection_id)
    if conn is None:
        raise ConnectionNotFound(str(connection_id))
    return conn


def set_webhook_secrets(connection_id, secrets_: list[str]) -> None:
    with tenant_transaction() as session:
        conn = session.get(Connection, connection_id, with_for_update=True)
        if conn is None:
            raise ConnectionNotFound(str(connection_id))
        conn.webhook_secrets = list(secrets_)


def resolve_endpoint(token: str) -> tuple[TenantRef, uuid.UUID, str] | None:
    with catalog_session() as session:
        row = session.execute(select(WebhookEndpoint, Tenant).join(Tenant, Tenant.id == WebhookEndpoint.tenant_id)
                              .where(WebhookEndpoint.token_hash == token_hash(token))).first()
    if row is None:
        return None
    endpoint, tenant = row
    return tenant_ref(tenant), endpoint.connection_id, endpoint.provider


def resolve_accounts(provider: str, account_ids: set[str]) -> dict[str, tuple[TenantRef, uuid.UUID]]:
    if not account_ids:
        return {}
    with catalog_session() as session:
        rows = session.execute(select(AccountIndex, Tenant).join(Tenant, Tenant.id == AccountIndex.tenant_id)
                               .where(AccountIndex.provider == provider,
                                      AccountIndex.account_id.in_(account_ids))).all()
    return {index.account_id: (tenant_ref(tenant), index.connection_id) for index, tenant in rows}
