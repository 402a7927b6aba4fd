"""Each tenant's webhook budget: its plan's `webhook_requests_per_minute`, one budget across all its own hook
endpoints (a tenant cannot multiply it by creating endpoints), a moving window in Redis (`limits`).

Invariant: a verified delivery to a connection's endpoint is kept only if the tenant's budget for the last minute
has room; otherwise nothing is kept and the sender is told when to come again (429 with Retry-After; every
provider Zixly receives from retries a 429). What is counted is what would be kept: handshakes and refused
signatures spend nothing (a forger cannot spend a tenant's budget), and app-level hooks (`/v1/hooks/apps/...`)
are not counted (one URL for every tenant: a provider disables such a hook after 429s). If Redis cannot be reached
the budget fails open like the API's limits (`rate_limit_fail_open`), counted in
zixly_rate_limit_storage_errors_total; failing closed answers 503.
"""
from __future__ import annotations

import logging
import math
import threading
import time

from limits import RateLimitItemPerMinute
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from core.platform import metrics
from core.platform.errors import Unavailable
from core.platform.runtime import settings
from core.tenants.plans import plan_limits
from tenancy.context import TenantRef, tenant_key

log = logging.getLogger("zixly.webhooks")
SCOPE = "tenant-webhooks"
_STORAGE_ERRORS = (RedisError, OSError, StorageError)
_limiters: dict[str, MovingWindowRateLimiter] = {}
_lock = threading.Lock()


class WebhookBudgetSpent(Exception):
    """The tenant's deliveries for the last minute used its plan's budget: 429, nothing kept."""

    code = "webhook-rate-limited"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def _limiter() -> MovingWindowRateLimiter:
    url = settings().redis_url
    limiter = _limiters.get(url)
    if limiter is None:
        with _lock:
            limiter = _limiters.get(url) or MovingWindowRateLimiter(
                storage_from_string(url, socket_timeout=1, socket_connect_timeout=1))
            _limiters[url] = limiter
    return limiter


def spend(tenant: TenantRef) -> None:
    """Spend one delivery of the tenant's budget (in its context), or raise WebhookBudgetSpent."""
    per_minute = plan_limits(tenant.plan)["webhook_requests_per_minute"]
    item, key = RateLimitItemPerMinute(per_minute), tenant_key("rate", "webhooks")
    try:
        limiter = _limiter()
        if limiter.hit(item, SCOPE, key):
            return
        reset = limiter.get_window_stats(item, SCOPE, key).reset_time
    except _STORAGE_ERRORS as exc:
        metrics.rate_limit_storage_errors.inc()
        if not settings().rate_limit_fail_open:
            raise Unavailable("webhook deliveries cannot be counted right now; deliver again shortly") from exc
        log.warning("rate-limit storage unreachable; webhook budget of %s not applied", tenant.slug)
        return
    metrics.rate_limit_rejections.labels(tenant.plan, "webhook").inc()
    retry_after = max(1, math.ceil(reset - time.time()))
    raise WebhookBudgetSpent(f"this tenant's webhook deliveries are limited to {per_minute} a minute by its "
                             f"{tenant.plan} plan; deliver again in {retry_after} s", retry_after)
