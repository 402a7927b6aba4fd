"""Dependency checks for /ready: the catalog database, Redis, and every shard."""
from __future__ import annotations

from sqlalchemy import select, text

from core.platform.runtime import redis_client
from tenancy.db import catalog_session, get_router
from tenancy.models import Shard


def _probe(fn) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:  # a check reports, it never raises
        return f"error: {type(exc).__name__}"


def check_dependencies() -> dict[str, str]:
    router = get_router()
    checks = {"catalog": _probe(lambda: router.catalog_engine.connect().close()),
              "redis": _probe(redis_client().ping)}
    if checks["catalog"] != "ok":
        return checks
    with catalog_session() as session:
        shards = list(session.scalars(select(Shard.name)))
    for name in shards:
        def ping(name=name):
            with router.shard_engine(name).connect() as conn:
                conn.execute(text("SELECT 1"))
        checks[f"shard:{name}"] = _probe(ping)
    return checks
