"""How many connections and webhook endpoints a tenant may have: its plan's `max_connections` and
`max_hook_endpoints` (catalog), checked where each is created.

Invariant: two creations at once cannot both take the last place. Connections are counted under a
transaction-level advisory lock of the tenant's schema (pooler-safe: released at commit), inside the transaction
that inserts the new one; endpoints are counted with the tenant's catalog row locked, inside the catalog
transaction that inserts the new one. Nothing is counted in one transaction while another is open.
"""
from __future__ import annotations

from sqlalchemy import func, select

from core.connections.models import Connection
from core.platform.errors import Conflict
from tenancy.context import TenantRef
from tenancy.db import catalog_session
from tenancy.models import Plan, Tenant, WebhookEndpoint


class PlanLimitReached(Conflict):
    code = "plan-limit-reached"


def plan_quota(tenant: TenantRef) -> Plan:
    """The tenant's plan row as the catalog has it now (not the plans cache: a quota is checked rarely)."""
    with catalog_session() as session:
        return session.scalar(select(Plan).join(Tenant, Tenant.plan == Plan.name).where(Tenant.id == tenant.id))


def check_connections(session, tenant: TenantRef, plan: Plan) -> None:
    """In the tenant transaction about to add a connection: refuse if the plan's connections are all taken."""
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{tenant.schema}:connections"))))
    live = session.scalar(select(func.count()).select_from(Connection).where(Connection.deleted_at.is_(None)))
    if live >= plan.max_connections:
        raise PlanLimitReached(f"the {plan.name} plan allows {plan.max_connections} connections; delete one or "
                               "change the plan")


def check_endpoints(session, tenant: TenantRef, plan: Plan) -> None:
    """In the catalog transaction about to add a webhook endpoint: refuse if the plan's endpoints are all taken."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant.id).with_for_update())
    taken = session.scalar(select(func.count()).select_from(WebhookEndpoint)
                           .where(WebhookEndpoint.tenant_id == tenant.id))
    if taken >= plan.max_hook_endpoints:
        raise PlanLimitReached(f"the {plan.name} plan allows {plan.max_hook_endpoints} webhook endpoints; delete "
                               "a connection or change the plan")
