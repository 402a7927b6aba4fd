"""Per-tenant request limits from the tenant's plan, with a per-API-key sub-limit (flask-limiter, Redis).

Limits are read from the plan on each request (plans are cached for seconds), so a plan change by staff takes
effect without a restart. If Redis is unreachable the limiter fails open and logs it.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import Flask, g, request
from flask_limiter import ApplicationLimit, HeaderNames, Limiter
from redis.exceptions import RedisError

from core.platform import metrics
from core.tenants.plans import plan_limits
from tenancy.context import tenant_key

# Webhook ingress has its own budget per endpoint token. App-level hooks (`/v1/hooks/apps/{provider}`) have
# none: one URL carries every tenant's events from Zixly's own app, a budget there would be shared by all
# tenants, and a provider answered 429 retries and then disables the hook (Xero does). Only the provider can
# sign them; unsigned floods are refused by the constant-time check, which is cheaper than a Redis window.
HOOK_ENDPOINTS = {"hooks.ConnectionHook"}


def _principal():
    return getattr(g, "principal", None)


def _no_tenant() -> bool:
    principal = _principal()
    return principal is None or principal.tenant is None


# flask-limiter asks for every limit's value before it applies `exempt_when`, so these answer for callers with
# no tenant too (public and staff requests, which are exempt) instead of raising on each of them.
_EXEMPT = "1/second"


def _tenant_limit() -> str:
    if _no_tenant():
        return _EXEMPT
    return f"{plan_limits(_principal().tenant.plan)['requests_per_minute']}/minute"


def _key_limit() -> str:
    if _no_tenant():
        return _EXEMPT
    return f"{plan_limits(_principal().tenant.plan)['key_requests_per_minute']}/minute"


def _is_not_hook() -> bool:
    return request.endpoint not in HOOK_ENDPOINTS


def _hook_key() -> str:
    # the token itself never reaches Redis: its hash (or the provider, for app-level hooks) is the key
    args = request.view_args or {}
    ident = args.get("token") or f"app:{args.get('provider', '')}"
    return "zixly-hook:" + hashlib.sha256(ident.encode()).hexdigest()[:32]


SCOPES = ("tenant", "principal", "webhook")


def _on_breach(request_limit) -> None:
    # flask-limiter hands over the bucket's [prefix, key, scope]; label with the scope (a fixed set), never the key
    args = getattr(request_limit, "request_args", None) or [""]
    scope = args[-1] if args[-1] in SCOPES else "other"
    principal = _principal()
    plan = principal.tenant.plan if principal is not None and principal.tenant is not None else "none"
    metrics.rate_limit_rejections.labels(plan, scope).inc()


class _StorageErrorCounter(logging.Filter):
    """flask-limiter logs (and swallows) a failed check when Redis is down: count each one."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if str(record.msg).startswith("Failed to rate limit") and isinstance(exc, (RedisError, OSError)):
            metrics.rate_limit_storage_errors.inc()
            record.msg, record.args, record.exc_info = "rate-limit storage unreachable; request let through", (), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_LIMITER_RETRY_AFTER = "X-Zixly-Limiter-Retry-After"  # internal: flask-limiter's Retry-After, sorted out below


def _standard_headers(response):
    """`RateLimit-*` beside flask-limiter's `X-RateLimit-*`, and `Retry-After` only where it means something.

    flask-limiter puts a Retry-After on every response (even a 200) and would overwrite one the app set (a 409
    for an Idempotency-Key still in progress says 1 s); it writes its value under an internal name instead.
    """
    retry_after = response.headers.pop(_LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and retry_after is not None:
        response.headers["Retry-After"] = retry_after
    limit, remaining = response.headers.get("X-RateLimit-Limit"), response.headers.get("X-RateLimit-Remaining")
    reset = response.headers.get("X-RateLimit-Reset")
    if limit is not None and remaining is not None and reset is not None:
        response.headers["RateLimit-Limit"] = limit
        response.headers["RateLimit-Remaining"] = remaining
        response.headers["RateLimit-Reset"] = retry_after or str(max(0, math.ceil(float(reset) - time.time())))
    return response


def init_app(app: Flask, *, redis_url: str, fail_open: bool, webhook_limit: str = "1200/minute") -> Limiter:
    app.after_request(_standard_headers)  # registered first, so it runs after flask-limiter's header hook
    logging.getLogger("flask-limiter").addFilter(_StorageErrorCounter())
    limiter = Limiter(
        key_func=lambda: "unused",
        app=app,
        storage_uri=redis_url,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
        strategy="moving-window",
        headers_enabled=True,
        header_name_mapping={HeaderNames.RETRY_AFTER: _LIMITER_RETRY_AFTER},
        swallow_errors=fail_open,
        key_prefix="zixly-rl",
        on_breach=_on_breach,
        application_limits=[
            ApplicationLimit(_tenant_limit, key_function=lambda: tenant_key("rate", "tenant"),
                             scope="tenant", exempt_when=_no_tenant),
            ApplicationLimit(_key_limit, key_function=lambda: tenant_key("rate", "principal", _principal().id),
                             scope="principal", exempt_when=_no_tenant),
            # webhook ingress: its own budget per endpoint token, never the tenant's API budget
            ApplicationLimit(webhook_limit, key_function=_hook_key, scope="webhook", exempt_when=_is_not_hook),
        ],
    )
    # the app-level hook has no budget at all (see HOOK_ENDPOINTS): skip flask-limiter's whole evaluation
    limiter.request_filter(lambda: request.endpoint == "hooks.AppHook")
    return limiter


def init_hook_limiter(app: Flask, *, redis_url: str, fail_open: bool, webhook_limit: str) -> Limiter:
    """The hook path's limiter (api/hook_app.py): only the webhook budget per endpoint token, in the same Redis
    buckets (same prefix and keys) as the API's limiter would keep it; the app-level hook skips it entirely."""
    app.after_request(_standard_headers)
    limiter = Limiter(
        key_func=lambda: "unused", app=app, storage_uri=redis_url,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1}, strategy="moving-window",
        headers_enabled=True, header_name_mapping={HeaderNames.RETRY_AFTER: _LIMITER_RETRY_AFTER},
        swallow_errors=fail_open, key_prefix="zixly-rl", on_breach=_on_breach,
        application_limits=[ApplicationLimit(webhook_limit, key_function=_hook_key, scope="webhook",
                                             exempt_when=_is_not_hook)])
    limiter.request_filter(lambda: request.endpoint == "hooks.AppHook")
    return limiter
