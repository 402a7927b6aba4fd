"""Shards (PostgreSQL servers) in the catalog, and moving a tenant from one to another.

A move: suspend the tenant, lock its tables on the source against writes (in-flight writers finish first,
within lock_timeout), create the schema on the target at the tenant's revision, check the structure is the
same, stream every row with binary COPY, set the sequences, verify row counts and checksums table by table,
commit the target, switch the catalog and resume, then rename the source schema out of the way (kept, for
undo and inspection, until cleaned up). Anything failing before the switch rolls the target back and resumes
the tenant where it was. An undo is a move back, so rows written since the move are kept.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from tenancy import citus, routecache, schemas
from tenancy.context import SLUG_RE
from tenancy.db import Router, resolve_dsn
from tenancy.migrate import create_tenant_schema, quote_ident
from tenancy.models import SchemaPoolEntry, Shard, Tenant, TenantMove

MOVABLE = ("active", "suspended")


class ShardError(Exception):
    code = "shard-error"


class MoveFailed(ShardError):
    code = "move-failed"


def list_shards(router: Router) -> list[dict]:
    with router.catalog_session() as session:
        tenants = dict(session.execute(select(Tenant.shard, func.count()).where(Tenant.status != "failed")
                                       .group_by(Tenant.shard)).all())
        pooled = dict(session.execute(select(SchemaPoolEntry.shard, func.count()).group_by(SchemaPoolEntry.shard))
                      .all())
        rows = session.scalars(select(Shard).order_by(Shard.name)).all()
    return [{"name": s.name, "dsn": _display(s.dsn), "default": s.is_default, "accepting": s.accepting_tenants,
             "tenants": tenants.get(s.name, 0), "pooled": pooled.get(s.name, 0)} for s in rows]


def _display(dsn: str | None) -> str:
    if not dsn:
        return "(catalog database)"
    if dsn.startswith("env:"):
        return dsn
    from sqlalchemy.engine import make_url

    return make_url(dsn).render_as_string(hide_password=True)


def add_shard(router: Router, name: str, dsn: str | None, *, accepting: bool = True) -> Shard:
    """Register a server; it is checked by connecting before it is recorded."""
    if not SLUG_RE.fullmatch(name or ""):
        raise ShardError("a shard name must match ^[a-z][a-z0-9-]{2,39}$")
    url = resolve_dsn(dsn)
    if url:
        from sqlalchemy import create_engine

        engine = create_engine(url, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    with router.catalog_session() as session, session.begin():
        if session.get(Shard, name) is not None:
            raise ShardError(f"shard {name!r} already exists")
        shard = Shard(name=name, dsn=dsn, is_default=False, accepting_tenants=accepting)
        session.add(shard)
    return shard


def set_accepting(router: Router, name: str, accepting: bool) -> Shard:
    with router.catalog_session() as session, session.begin():
        shard = session.get(Shard, name, with_for_update=True)
        if shard is None:
            raise ShardError(f"unknown shard {name!r}")
        shard.accepting_tenants = accepting
    return shard


def _begin_move(router: Router, slug: str, to_shard: str, undo_of: int | None) -> tuple[Tenant, TenantMove]:
    with router.catalog_session() as session, session.begin():
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug).with_for_update()) \
            if SLUG_RE.fullmatch(slug or "") else None
        if tenant is None:
            raise ShardError(f"no tenant {slug!r}")
        if session.get(Shard, to_shard) is None:
            raise ShardError(f"unknown shard {to_shard!r}")
        if tenant.shard == to_shard:
            raise ShardError(f"tenant {slug!r} is already on shard {to_shard!r}")
        if tenant.status not in MOVABLE:
            raise ShardError(f"cannot move a tenant that is {tenant.status}")
        interrupted = session.scalars(select(TenantMove).where(TenantMove.tenant_id == tenant.id,
                                                               TenantMove.status == "copying")).all()
        previous = tenant.status
        for old in interrupted:  # a move killed mid-way: its target copy was never committed or is dropped below
            old.status, old.error, old.finished_at = "failed", "interrupted", datetime.now(UTC)
            previous = old.previous_status
        move = TenantMove(tenant_id=tenant.id, from_shard=tenant.shard, to_shard=to_shard, status="copying",
                          previous_status=previous, undo_of=undo_of)
        session.add(move)
        tenant.status = "suspended"
        session.flush()
    routecache.forget_all()
    return tenant, move


def _finish(router: Router, move_id: int, **values) -> TenantMove:
    with router.catalog_session() as session, session.begin():
        move = session.get(TenantMove, move_id, with_for_update=True)
        for key, value in values.items():
            setattr(move, key, value)
        if move.status != "copying":
            move.finished_at = datetime.now(UTC)
        tenant = session.get(Tenant, move.tenant_id, with_for_update=True)
        if values.get("status") == "done":
            tenant.shard = move.to_shard
        if values.get("status") in ("done", "failed"):
            tenant.status = move.previous_status
    routecache.forget_all()
    return move


def _same_session_settings(conn, lock_timeout: str | None = None) -> None:
    # text forms of timestamps and floats must not depend on either server's defaults (checksums compare them)
    conn.execute(text("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, MDY', true),"
                      " set_config('extra_float_digits', '3', true), set_config('IntervalStyle', 'postgres', true)"))
    if lock_timeout:
        conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": lock_timeout})


def move_tenant(router: Router, slug: str, to_shard: str, *, lock_timeout: str = "10s", undo_of: int | None = None,
                on_step=None, on_table=None) -> TenantMove:
    """Move a tenant's schema and rows to `to_shard`; return the finished move record."""
    step = on_step or (lambda label: None)
    tenant, move = _begin_move(router, slug, to_shard, undo_of)
    step(f"suspended {slug}; copying from {move.from_shard} to {to_shard}")
    schema = tenant.schema_name
    src_engine, dst_engine = router.shard_engine(move.from_shard), router.shard_engine(to_shard)
    try:
        with src_engine.connect() as src, dst_engine.connect() as dst:
            # READ COMMITTED is enough: once the EXCLUSIVE locks are held nobody else writes, and every
            # statement after them sees everything committed before.
            src_tx, dst_tx = src.begin(), dst.begin()
            names = schemas.tables(src, schema)
            _same_session_settings(src, lock_timeout)
            _same_session_settings(dst, lock_timeout)
            src.exec_driver_sql(f"LOCK TABLE {', '.join(f'{quote_ident(schema)}.{quote_ident(t)}' for t in names)}"
                                " IN EXCLUSIVE MODE")  # reads go on; writers finish first, new ones wait
            step("source locked against writes")
            counts = _copy(router, src, dst, schema, names, to_shard, step, on_table)
            dst_tx.commit()
            step("target committed; switching the catalog")
            _finish(router, move.id, status="done", row_counts=counts, leftover_schema=schema)
            leftover = f"{schema}__moved_{int(time.time())}"
            src.exec_driver_sql(f"ALTER SCHEMA {quote_ident(schema)} RENAME TO {quote_ident(leftover)}")
            src_tx.commit()  # writers blocked on the old tables now fail: the name no longer resolves
    except Exception as exc:
        if _status(router, move.id) == "copying":
            _finish(router, move.id, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise MoveFailed(f"moving {slug!r} failed, nothing changed: {type(exc).__name__}: {exc}"[:500]) from exc
        raise
    move = _finish(router, move.id, leftover_schema=leftover)
    step(f"resumed {slug} on {to_shard}; old copy kept as {leftover} on {move.from_shard}")
    return move


def is_moving(router: Router, tenant_id: int) -> bool:
    """Whether a move of the tenant is in progress (it is suspended only for that while)."""
    with router.catalog_session() as session:
        return session.scalar(select(func.count()).select_from(TenantMove).where(
            TenantMove.tenant_id == tenant_id, TenantMove.status == "copying")) > 0


def _status(router: Router, move_id: int) -> str:
    with router.catalog_session() as session:
        return session.get(TenantMove, move_id).status


def _copy(router, src, dst, schema, names, to_shard, step, on_table) -> dict:
    revision = src.exec_driver_sql(f"SELECT version_num FROM {quote_ident(schema)}.alembic_version").scalar()
    if dst.execute(text("SELECT to_regnamespace(:s) IS NOT NULL"), {"s": quote_ident(schema)}).scalar():
        raise MoveFailed(f"schema {schema} already exists on shard {to_shard}")
    create_tenant_schema(dst, schema, revision=revision, prelude=citus.prelude(router, to_shard))
    if schemas.describe(src, schema) != schemas.describe(dst, schema):
        raise MoveFailed(f"the schema created on {to_shard} at {revision} differs from the source")
    data = [t for t in names if t != schemas.VERSION_TABLE]
    if data:  # the head script seeds rows; the source's rows replace them
        dst.exec_driver_sql(f"TRUNCATE {', '.join(f'{quote_ident(schema)}.{quote_ident(t)}' for t in data)}")
    schemas.copy_rows(src, dst, schema, schema, data, on_table=on_table)
    step("rows copied; verifying")
    counts = schemas.row_counts(src, schema, names)
    if counts != schemas.row_counts(dst, schema, names):
        raise MoveFailed("row counts differ after the copy")
    if schemas.checksums(src, schema, names) != schemas.checksums(dst, schema, names):
        raise MoveFailed("row contents differ after the copy")
    if schemas.sequence_values(src, schema) != schemas.sequence_values(dst, schema):
        raise MoveFailed("sequence values differ after the copy")
    return counts


def last_move(router: Router, slug: str) -> TenantMove | None:
    with router.catalog_session() as session:
        return session.scalar(select(TenantMove).join(Tenant, Tenant.id == TenantMove.tenant_id)
                              .where(Tenant.slug == slug).order_by(TenantMove.id.desc()).limit(1))


def undo_move(router: Router, slug: str, **kwargs) -> TenantMove:
    """Move the tenant back to where its last move took it from (rows written since are kept)."""
    with router.catalog_session() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug)) if SLUG_RE.fullmatch(slug or "") else None
        done = session.scalar(select(TenantMove).where(TenantMove.tenant_id == tenant.id,
                                                       TenantMove.status.in_(("done", "cleaned")))
                              .order_by(TenantMove.id.desc()).limit(1)) if tenant else None
    if done is None or tenant.shard != done.to_shard:
        raise ShardError(f"tenant {slug!r} has no move to undo")
    return move_tenant(router, slug, done.from_shard, undo_of=done.id, **kwargs)


def drop_leftovers(router: Router, slug: str) -> list[str]:
    """Drop the old copies kept by the tenant's finished moves; return 'shard:schema' for each."""
    with router.catalog_session() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug)) if SLUG_RE.fullmatch(slug or "") else None
        if tenant is None:
            raise ShardError(f"no tenant {slug!r}")
        moves = session.scalars(select(TenantMove).where(TenantMove.tenant_id == tenant.id,
                                                         TenantMove.status == "done",
                                                         TenantMove.leftover_schema.is_not(None))).all()
    dropped = []
    for move in moves:
        if move.leftover_schema == tenant.schema_name and move.from_shard == tenant.shard:
            continue  # never the live schema (a move that was undone before its source was renamed)
        with router.shard_engine(move.from_shard).begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote_ident(move.leftover_schema)} CASCADE")
        _finish(router, move.id, status="cleaned", leftover_schema=None)
        dropped.append(f"{move.from_shard}:{move.leftover_schema}")
    return dropped
