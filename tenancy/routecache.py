"""A short-lived, per-process memory of webhook routes (provider account or endpoint token -> tenant).

Every webhook needs its tenant before anything else, and that lookup is a catalog query; providers send
bursts for the same accounts. Only found routes are kept, for `TTL` seconds, so a new connection is
reachable at once. A route can be at most `TTL` behind the catalog, which is safe because the catalog is
not the last word: the tenant's insert checks its connection still exists (core.inbox), a moved tenant's old
schema is renamed away so a stale write fails instead of landing there, and this process forgets every
route whenever it changes a connection, a tenant's status or its shard.
"""
from __future__ import annotations

import time

TTL = 2.0
MAX_ENTRIES = 50_000
_routes: dict[tuple, tuple[float, object]] = {}


def lookup(key: tuple):
    """The remembered route, or None when there is none or it is older than TTL."""
    found = _routes.get(key)
    if found is None or found[0] < time.monotonic():
        return None
    return found[1]


def remember(key: tuple, route) -> None:
    if len(_routes) >= MAX_ENTRIES:
        _routes.clear()
    _routes[key] = (time.monotonic() + TTL, route)


def forget_all() -> None:
    _routes.clear()
