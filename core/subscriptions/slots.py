"""Per-tenant delivery concurrency: at most `limit` of one tenant's deliveries in flight at once over every
worker, so one tenant's slow endpoints occupy that many worker slots and never the whole pool.

A slot is a member of a Redis sorted set (tenant_key) scored by when it lapses: a worker that dies mid-delivery
frees its slot when the lease ends. Redis being away opens the gate (deliveries go on, unpaced) rather than
stopping every tenant's deliveries.
"""
from __future__ import annotations

import logging
import time
import uuid

import redis

from core.platform.runtime import redis_client
from tenancy.context import tenant_key

log = logging.getLogger("zixly.subscriptions")

_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


def take(limit: int, lease_seconds: float) -> str | None:
    """A slot token, or None when the tenant already has `limit` deliveries in flight."""
    token = uuid.uuid4().hex
    now = time.time()
    try:
        taken = redis_client().eval(_TAKE, 1, tenant_key("webhook-slots"), now, now + lease_seconds, limit, token,
                                    int(lease_seconds * 1000) + 1000)
    except redis.RedisError as exc:
        log.warning("delivery slots unavailable (delivering unpaced): %s", exc)
        return token
    return token if taken else None


def give_back(token: str) -> None:
    try:
        redis_client().zrem(tenant_key("webhook-slots"), token)
    except redis.RedisError as exc:  # the slot lapses with its lease
        log.warning("could not free a delivery slot: %s", exc)
