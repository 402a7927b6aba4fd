"""A short-lived, per-process memory of routes: provider account or webhook endpoint token -> tenant and
connection, tenant slug -> tenant (for tasks and bearer tokens).

Every webhook, task and bearer-token request needs its tenant before anything else, and that lookup is a
catalog query; providers send bursts for the same accounts and workers run bursts of one tenant's tasks.
Only found routes are kept, for `TTL` seconds, so a new connection or tenant is reachable at once. A route
can be at most `TTL` behind the catalog, which is safe because the catalog is not the last word: the
tenant's insert checks its connection still exists (core.inbound.inbox), a moved tenant's old schema is renamed
away so a stale write fails instead of landing there (the API answers 503, tasks retry), and this process
forgets every route whenever it changes a connection, a tenant's status, plan or shard. In other processes
a suspension takes effect within `TTL`.
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
