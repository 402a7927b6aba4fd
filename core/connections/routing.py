"""Which tenant and connection a webhook belongs to, from the catalog (by endpoint token or by provider
account), remembered briefly by tenancy.routecache."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from core.connections.sealing import token_hash
from tenancy import routecache
from tenancy.apikeys import tenant_ref
from tenancy.context import TenantRef
from tenancy.db import catalog_session
from tenancy.models import AccountIndex, Tenant, WebhookEndpoint


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
