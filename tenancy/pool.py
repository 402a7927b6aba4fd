"""A pool of ready, unassigned tenant schemas at the head, per shard, so provisioning is a rename.

A pooled schema is created by the same rendered head script as any tenant schema (so it is identical to one
migrated from scratch; a test compares the catalogs) under a name `zp_<hex>`, and recorded in
`catalog.schema_pool`. Provisioning claims one (FOR UPDATE SKIP LOCKED) and renames it to the tenant's schema
in the same transaction; nothing in a schema refers to its own name, so a rename is all it takes. Refills run
in the background (a Celery task on a beat schedule and when a claim leaves the pool low) and from the CLI;
a fleet migration drops pooled schemas left behind by a new head, and refills make new ones.
"""
from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Connection, text

from tenancy import citus
from tenancy.db import Router
from tenancy.migrate import create_tenant_schema, quote_ident, tenant_head, upgrade_sql

PREFIX = "zp_"
_LOCK_CLASS = 0x7A70  # pg advisory lock class for pool maintenance, one lock per shard

_CLAIM = text("""
    WITH picked AS (
        SELECT schema_name FROM catalog.schema_pool WHERE shard = :shard AND revision = :head
        ORDER BY created_at, schema_name LIMIT 1 FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM catalog.schema_pool p USING picked
        WHERE p.shard = :shard AND p.schema_name = picked.schema_name RETURNING p.schema_name
    )
    SELECT (SELECT schema_name FROM gone) AS schema_name,
           (SELECT count(*) FROM catalog.schema_pool WHERE shard = :shard AND revision = :head) AS ready
""")


def claim(conn: Connection, shard: str, head: str) -> tuple[str | None, int]:
    """Take one ready schema off the pool in `conn`'s transaction (a catalog connection).

    Returns (schema name or None, how many remain ready after this claim)."""
    row = conn.execute(_CLAIM, {"shard": shard, "head": head}).one()
    return row.schema_name, row.ready - (1 if row.schema_name else 0)


def adopt(conn: Connection, pooled: str, schema: str) -> bool:
    """Rename a claimed pooled schema to the tenant's schema on the shard; False if it has gone missing."""
    if conn.execute(text("SELECT to_regnamespace(:s) IS NOT NULL"), {"s": quote_ident(pooled)}).scalar():
        conn.exec_driver_sql(f"ALTER SCHEMA {quote_ident(pooled)} RENAME TO {quote_ident(schema)}")
        return True
    return False


def notify_low(on_low, shard: str, remaining: int) -> None:
    """Tell the provisioning caller's `on_low(shard, remaining)` (if it gave one) how many ready schemas are left."""
    if on_low is not None:
        try:
            on_low(shard, remaining)
        except Exception:  # noqa: BLE001  the beat schedule refills anyway
            pass


def counts(router: Router) -> dict[tuple[str, str], int]:
    """{(shard, revision): ready schemas}."""
    with router.catalog_engine.connect() as conn:
        rows = conn.execute(text("SELECT shard, revision, count(*) FROM catalog.schema_pool GROUP BY 1, 2"))
        return {(shard, rev): n for shard, rev, n in rows}


def _shards(router: Router, shard: str | None) -> list[str]:
    with router.catalog_engine.connect() as conn:
        if shard:
            return [shard]
        return list(conn.execute(text("SELECT name FROM catalog.shards WHERE accepting_tenants ORDER BY name"))
                    .scalars())


def _locked(conn: Connection, shard: str, wait: bool) -> bool:
    """Take the shard's pool lock in `conn`'s transaction, which stays open until `_unlock`: a transaction-level
    lock on a pinned connection is exclusive behind a transaction-pooling PgBouncer too (a session-level lock is
    not: its unlock may run on another server connection, and the next client of the locking one would hold it)."""
    fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    got = conn.execute(text(f"SELECT {fn}(:c, hashtext(:s))"), {"c": _LOCK_CLASS, "s": shard}).scalar()
    if not wait and not got:
        conn.rollback()
    return wait or bool(got)


def _unlock(conn: Connection, shard: str) -> None:
    conn.rollback()  # ends the transaction that holds the lock (it changed nothing)


def refill(router: Router, *, target: int, shard: str | None = None, location: Path | None = None,
           jobs: int = 1, on_created=None) -> dict[str, int]:
    """Top up each accepting shard (or `shard`) to `target` ready schemas at the head; {shard: created}.

    A shard whose refill is already running elsewhere is skipped (per-shard advisory lock), so duplicate
    refill tasks are harmless. Citus shards are left out: their schemas are created distributed at sign-up.
    """
    head = tenant_head(location)
    upgrade_sql(None, head, location=location)  # render once, before any thread
    created: dict[str, int] = {}
    for name in _shards(router, shard):
        if citus.prelude(router, name):
            continue
        with router.catalog_engine.connect() as lock_conn:
            if not _locked(lock_conn, name, wait=False):
                continue
            try:
                _sweep_orphans(router, name)
                ready = counts(router).get((name, head), 0)
                missing = max(0, target - ready)
                with ThreadPoolExecutor(max_workers=max(1, jobs)) as executor:
                    for _ in executor.map(lambda _i, n=name: _create_one(router, n, location), range(missing)):
                        if on_created:
                            on_created(name)
                created[name] = missing
            finally:
                _unlock(lock_conn, name)
    return created


def _create_one(router: Router, shard: str, location: Path | None) -> str:
    engine = router.shard_engine(shard)
    same_db = engine is router.catalog_engine
    name = PREFIX + secrets.token_hex(8)
    record = text("INSERT INTO catalog.schema_pool (schema_name, shard, revision) VALUES (:n, :s, :r)")
    with engine.begin() as conn:
        revision = create_tenant_schema(conn, name, location=location)
        if same_db:
            conn.execute(record, {"n": name, "s": shard, "r": revision})
    if not same_db:  # a crash in between leaves an unrecorded zp_ schema: the next refill's sweep drops it
        with router.catalog_engine.begin() as conn:
            conn.execute(record, {"n": name, "s": shard, "r": revision})
    return name


def _sweep_orphans(router: Router, shard: str) -> None:
    """Drop `zp_` schemas on the shard that the catalog does not list (called under the shard's pool lock)."""
    with router.catalog_engine.connect() as conn:
        known = set(conn.execute(text("SELECT schema_name FROM catalog.schema_pool WHERE shard = :s"),
                                 {"s": shard}).scalars())
    engine = router.shard_engine(shard)
    with engine.connect() as conn:
        present = set(conn.execute(text(r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'zp\_%'")).scalars())
    for name in present - known:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote_ident(name)} CASCADE")


def discard_stale(router: Router, head: str, *, location: Path | None = None) -> int:
    """Drop pooled schemas that are not at `head` (a new migration arrived); return how many."""
    with router.catalog_engine.connect() as conn:
        stale = conn.execute(text("SELECT shard, schema_name FROM catalog.schema_pool WHERE revision <> :h"),
                             {"h": head}).all()
    for shard in sorted({s for s, _ in stale}):
        with router.catalog_engine.connect() as lock_conn:
            _locked(lock_conn, shard, wait=True)
            try:
                for _, name in [r for r in stale if r[0] == shard]:
                    drop(router, shard, name)
            finally:
                _unlock(lock_conn, shard)
    return len(stale)


def drop(router: Router, shard: str, name: str) -> None:
    with router.shard_engine(shard).begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote_ident(name)} CASCADE")
    with router.catalog_engine.begin() as conn:
        conn.execute(text("DELETE FROM catalog.schema_pool WHERE shard = :s AND schema_name = :n"),
                     {"s": shard, "n": name})
