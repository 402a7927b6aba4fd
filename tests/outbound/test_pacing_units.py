"""The quota arithmetic and the shared token bucket in Redis, on their own."""
from __future__ import annotations

import time
import uuid

import pytest

from connectors.ratelimits import Quota
from connectors.registry import CONNECTORS
from core.outbound import token_bucket


def test_a_window_quota_never_allows_more_than_its_calls_in_any_window():
    quota = Quota.per_window(100, 10)
    assert (quota.capacity, quota.refill) == (10, 9.0)
    assert quota.capacity + quota.refill * 10 == 100
    assert Quota.parse("60/60+6") == Quota.per_window(60, 60) == Quota(6, 0.9)
    for bad in ("", "abc", "10", "10/0", "0/10", "10/10+11"):
        with pytest.raises(ValueError):
            Quota.parse(bad)
    assert all(isinstance(cls.quota, Quota) and cls.quota.refill > 0 for cls in CONNECTORS.values())


def test_the_bucket_paces_and_a_block_holds_everyone_back(app):
    key, quota = f"test:bucket:{uuid.uuid4()}", Quota(2, 10.0)
    assert [token_bucket.take(key, quota) for _ in range(2)] == [0.0, 0.0]  # the burst
    wait = token_bucket.take(key, quota)
    assert 0 < wait <= 0.1
    time.sleep(wait)
    assert token_bucket.take(key, quota) == 0.0
    token_bucket.block(key, quota, 1.5)  # the provider said 429, Retry-After 1.5
    assert 1.4 < token_bucket.take(key, quota) <= 1.6
