"""A per-address budget for failed authentications, checked before a credential costs a catalog query.

Each refused credential (an unknown or revoked API key, a bad or malformed bearer token) spends one unit of the
client address's budget (`ZIXLY_AUTH_FAILURE_LIMIT`, a moving window in Redis). Once it is spent, a request from
that address that carries credentials is answered 429 problem+json with Retry-After before the key is looked up
or the token verified; good credentials from other addresses are unaffected. The address is
`request.remote_addr`, which ProxyFix rewrites from X-Forwarded-For only for the `ZIXLY_TRUSTED_PROXIES` hops the
deployment declares, so a client cannot choose its own.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time

from flask import current_app, request
from flask_limiter import Limiter
from limits import parse
from limits.errors import StorageError
from redis.exceptions import RedisError

from api.problems import Problem
from core.platform import metrics

log = logging.getLogger("zixly.api")
SCOPE = "auth-failure"
_STORAGE_ERRORS = (RedisError, OSError, StorageError)


class FailureBudget:
    def __init__(self, limiter: Limiter, limit: str, *, fail_open: bool) -> None:
        self.limiter, self.item, self.fail_open = limiter, parse(limit), fail_open

    def refuse_if_spent(self) -> None:
        try:
            allowed = self.limiter.limiter.test(self.item, SCOPE, _address())
            stats = None if allowed else self.limiter.limiter.get_window_stats(self.item, SCOPE, _address())
        except _STORAGE_ERRORS:
            self._storage_down()
            return
        if stats is not None:
            metrics.rate_limit_rejections.labels("none", SCOPE).inc()
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise Problem(429, "too-many-failed-authentications",
                          f"Too many failed authentications from this address (at most {self.item}); "
                          f"try again in {retry_after} s.", title="Too Many Requests",
                          headers={"Retry-After": str(retry_after)})

    def spend(self) -> None:
        try:
            self.limiter.limiter.hit(self.item, SCOPE, _address())
        except _STORAGE_ERRORS:
            self._storage_down()

    def _storage_down(self) -> None:
        metrics.rate_limit_storage_errors.inc()
        if not self.fail_open:
            raise Problem(503, "rate-limit-unavailable", "Authentication attempts cannot be counted right now.",
                          title="Service Unavailable", headers={"Retry-After": "5"})
        log.warning("rate-limit storage unreachable; failed-authentication budget not applied")


def _address() -> str:
    # the address never reaches Redis as such: its hash is the key
    return hashlib.sha256((request.remote_addr or "unknown").encode()).hexdigest()[:32]


def budget() -> FailureBudget | None:
    return current_app.extensions.get("zixly_auth_failures")
