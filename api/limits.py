"""Per-tenant request limits from the tenant's plan, with a per-API-key sub-limit (flask-limiter, Redis).

Limits are read from the plan on each request (plans are cached for seconds), so a plan change by staff takes
effect without a restart. If Redis is unreachable the limiter fails open and logs it.
"""
from __future__ import annotations

from flask import Flask, g
from flask_limiter import ApplicationLimit, Limiter

from core.plans import plan_limits
from tenancy.context import tenant_key


def _principal():
    return getattr(g, "principal", None)


def _no_tenant() -> bool:
    principal = _principal()
    return principal is None or principal.tenant is None


def _tenant_limit() -> str:
    return f"{plan_limits(_principal().tenant.plan)['requests_per_minute']}/minute"


def _key_limit() -> str:
    return f"{plan_limits(_principal().tenant.plan)['key_requests_per_minute']}/minute"


def init_app(app: Flask, *, redis_url: str, fail_open: bool) -> Limiter:
    limiter = Limiter(
        key_func=lambda: "unused",
        app=app,
        storage_uri=redis_url,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
        strategy="moving-window",
        headers_enabled=True,
        swallow_errors=fail_open,
        key_prefix="zixly-rl",
        application_limits=[
            ApplicationLimit(_tenant_limit, key_function=lambda: tenant_key("rate", "tenant"),
                             scope="tenant", exempt_when=_no_tenant),
            ApplicationLimit(_key_limit, key_function=lambda: tenant_key("rate", "principal", _principal().id),
                             scope="principal", exempt_when=_no_tenant),
        ],
    )
    return limiter
