"""Plans and their limits; read often, changed rarely, so cached briefly (a change shows within seconds)."""
from __future__ import annotations

import threading
import time

from sqlalchemy import select

from tenancy.context import current_tenant
from tenancy.db import catalog_session
from tenancy.models import Plan, Tenant

CACHE_SECONDS = 5.0
_cache: dict[str, dict] = {}
_loaded = 0.0
_lock = threading.Lock()


def plan_limits(name: str) -> dict:
    global _cache, _loaded
    if time.monotonic() - _loaded > CACHE_SECONDS:
        with _lock:
            with catalog_session() as session:
                _cache = {p.name: {"requests_per_minute": p.requests_per_minute,
                                   "key_requests_per_minute": p.key_requests_per_minute,
                                   "webhook_requests_per_minute": p.webhook_requests_per_minute,
                                   "max_connections": p.max_connections,
                                   "max_hook_endpoints": p.max_hook_endpoints,
                                   "retention_days": p.retention_days,
                                   "max_subscriptions": p.max_subscriptions}
                          for p in session.scalars(select(Plan))}
            _loaded = time.monotonic()
    return _cache[name]


def describe_current_tenant() -> dict:
    ref = current_tenant()
    with catalog_session() as session:
        tenant = session.get(Tenant, ref.id)
    return {"slug": tenant.slug, "name": tenant.name, "plan": tenant.plan, "status": tenant.status,
            "limits": plan_limits(tenant.plan)}
