"""Per-connection token buckets in Redis, shared by every outbound consumer, so the fleet together stays under
each provider's quota. One Lua script does the arithmetic atomically on Redis' own clock (consumers' clocks
may differ); a 429 from the provider empties the bucket until its Retry-After has passed.
"""
from __future__ import annotations

from connectors.ratelimits import Quota
from connectors.registry import CONNECTORS
from core.platform.runtime import redis_client, settings

# KEYS[1]: the bucket. ARGV: capacity, refill per second, block seconds (0: take one token).
# Answers "0" when a token was taken (or the block recorded), else the seconds to wait, as a string (Lua
# numbers would come back truncated to integers).
_SCRIPT = """
local capacity, rate, block = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(s[1]) or capacity, tonumber(s[2]) or now
local ttl = math.ceil(capacity / rate * 1000) + 1000
if block > 0 then
  -- refilling starts only once the provider's wait is over
  local from = math.max(ts, now + block)
  redis.call('HSET', KEYS[1], 'tokens', 0, 'ts', from)
  redis.call('PEXPIRE', KEYS[1], ttl + math.ceil((from - now) * 1000))
  return '0'
end
if now < ts then
  return tostring(ts - now + 1 / rate)
end
tokens = math.min(capacity, tokens + (now - ts) * rate)
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return '0'
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return tostring((1 - tokens) / rate)
"""
_script = None


def _run(key: str, quota: Quota, block: float) -> float:
    global _script
    client = redis_client()
    if _script is None or _script.registered_client is not client:
        _script = client.register_script(_SCRIPT)
    return float(_script(keys=[key], args=[quota.capacity, quota.refill, block]))


def take(key: str, quota: Quota) -> float:
    """Take one token: 0.0 when taken, else how many seconds until one may be (nothing is taken then)."""
    return _run(key, quota, 0.0)


def block(key: str, quota: Quota, seconds: float) -> None:
    """The provider said "wait": nobody takes a token from this bucket for `seconds`."""
    _run(key, quota, max(seconds, 0.001))


def quota(provider: str) -> Quota:
    """The provider's quota per connection, unless the settings override it (ZIXLY_OUTBOUND_QUOTAS)."""
    override = settings().outbound_quotas.get(provider)
    return Quota.parse(override) if override else CONNECTORS[provider].quota
