"""Tenant lifecycle in the catalog and on its shard: create, suspend, resume, archive, restore.

Create is all-or-nothing: the schema is created and migrated in one shard transaction, so a failure leaves no
schema; the catalog row is then `failed` with the reason and a retry of the same slug starts over.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenancy import apikeys, citus, pool, routecache
from tenancy.context import SLUG_RE, schema_for, validate_slug
from tenancy.db import Router
from tenancy.migrate import create_tenant_schema, quote_ident, tenant_head
from tenancy.models import Plan, Shard, Tenant

STALE_PROVISIONING = timedelta(minutes=5)
# Tests point this at a copy of the tenant tree with a failing migration.
TENANT_SCRIPT_LOCATION: Path | None = None


class TenantError(Exception):
    code = "tenant-error"


class TenantExists(TenantError):
    code = "tenant-exists"


class TenantNotFound(TenantError):
    code = "tenant-not-found"


class UnknownPlan(TenantError):
    code = "unknown-plan"


class UnknownShard(TenantError):
    code = "unknown-shard"


class InvalidTransition(TenantError):
    code = "invalid-transition"


class ProvisioningFailed(TenantError):
    code = "provisioning-failed"


def _by_slug(slug: str):
    """Select a tenant by slug; a string that cannot be a slug finds nothing (and never reaches SQL)."""
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise TenantNotFound(f"no tenant {slug!r}"[:120])
    return select(Tenant).where(Tenant.slug == slug)


def _place(session, shard: str | None) -> str:
    if shard:
        row = session.get(Shard, shard)
        if row is None or not row.accepting_tenants:
            raise UnknownShard(f"shard {shard!r} does not exist or is not accepting tenants")
        return row.name
    counts = (
        select(Shard.name, func.count(Tenant.id).label("n"))
        .outerjoin(Tenant, (Tenant.shard == Shard.name) & (Tenant.status != "failed"))
        .where(Shard.accepting_tenants.is_(True))
        .group_by(Shard.name, Shard.is_default)
        .order_by(func.count(Tenant.id), Shard.is_default.desc(), Shard.name)
        .limit(1)
    )
    row = session.execute(counts).first()
    if row is None:
        raise UnknownShard("no shard is accepting tenants")
    return row.name


def _reserve_in(session, *, slug, name, plan, shard, admin_email) -> Tenant:
    if session.get(Plan, plan) is None:
        raise UnknownPlan(f"unknown plan {plan!r}")
    placed = _place(session, shard)
    tenant = session.scalar(_by_slug(slug).with_for_update())
    if tenant is not None:
        stale = tenant.status == "provisioning" and (
            datetime.now(UTC) - tenant.updated_at > STALE_PROVISIONING)
        if tenant.status != "failed" and not stale:
            raise TenantExists(f"tenant {slug!r} already exists")
    else:
        tenant = Tenant(slug=slug, schema_name=schema_for(slug))
    tenant.name, tenant.plan, tenant.admin_email, tenant.shard = name, plan, admin_email, placed
    tenant.status, tenant.failure_reason = "provisioning", None
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:
        raise TenantExists(f"tenant {slug!r} already exists") from exc
    return tenant


def _from_pool(router: Router, *, slug, name, plan, shard, admin_email, head, activate):
    """The fast path: on the catalog's own database, reserve, claim a pooled schema, rename it, activate and
    issue the first key in one transaction (one commit). Returns (result, remaining) or (None, tenant) when
    the placed shard has no ready schema (the reservation is then committed for the slow path)."""
    with router.catalog_session() as session, session.begin():
        tenant = _reserve_in(session, slug=slug, name=name, plan=plan, shard=shard, admin_email=admin_email)
        if router.shard_engine(tenant.shard) is not router.catalog_engine or citus.prelude(router, tenant.shard):
            return None, tenant
        conn = session.connection()
        claimed, remaining = pool.claim(conn, tenant.shard, head)
        if not claimed or not pool.adopt(conn, claimed, tenant.schema_name):
            return None, tenant
        tenant.status, tenant.schema_revision = "active", head
        key, secret = apikeys.issue(session, tenant_id=tenant.id, name=activate["key_name"], role="ADMIN",
                                    environment=activate["environment"], created_by=activate["created_by"])
        session.flush()
    return (tenant, key, secret), remaining


def _drop_schema(router: Router, shard: str, schema: str) -> None:
    with router.shard_engine(shard).begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")


def create_tenant(router: Router, *, slug: str, name: str, plan: str = "free", shard: str | None = None,
                  admin_email: str | None = None, key_name: str = "initial admin key",
                  created_by: str | None = None, environment: str = "live",
                  on_pool_low=None) -> tuple[Tenant, object, str]:
    """Provision a tenant; return (tenant, its first ADMIN key, the key's secret shown once).

    `on_pool_low(shard, remaining)`, when given, is called after a pooled schema was taken (the caller asks for
    a refill; its errors are ignored: the beat schedule refills anyway).

    The schema is a ready one from the pool, renamed (milliseconds), or, when the pool has none at the head,
    created by the rendered head script. On the catalog's own database the claim, the rename, the activation
    and the first key commit in one transaction.
    """
    validate_slug(slug)
    head = tenant_head(TENANT_SCRIPT_LOCATION)
    fast, tenant = _from_pool(router, slug=slug, name=name, plan=plan, shard=shard, admin_email=admin_email,
                              head=head, activate=dict(key_name=key_name, environment=environment,
                                                       created_by=created_by))
    if fast is not None:
        pool.notify_low(on_pool_low, fast[0].shard, tenant)
        return fast
    engine = router.shard_engine(tenant.shard)
    same_db = engine is router.catalog_engine
    activate = dict(tenant_id=tenant.id, key_name=key_name, environment=environment, created_by=created_by)
    prelude = citus.prelude(router, tenant.shard)
    claimed, remaining = None, 0
    try:
        if not same_db and not prelude:  # another server: claim here, rename there, activate here
            with router.catalog_engine.begin() as conn:
                claimed, remaining = pool.claim(conn, tenant.shard, head)
        with engine.begin() as conn:
            if claimed and pool.adopt(conn, claimed, tenant.schema_name):
                revision = head
            else:
                revision = create_tenant_schema(conn, tenant.schema_name, location=TENANT_SCRIPT_LOCATION,
                                                prelude=prelude)
            if same_db:  # same database: schema and activation commit together
                with Session(bind=conn, expire_on_commit=False) as session:
                    result = _activate(session, revision=revision, **activate)
    except Exception as exc:
        try:
            _drop_schema(router, tenant.shard, tenant.schema_name)
            if claimed and not same_db:  # claimed in its own transaction: nobody else will use it
                _drop_schema(router, tenant.shard, claimed)
        finally:
            _set_failed(router, tenant.id, f"{type(exc).__name__}: {exc}"[:2000])
        raise ProvisioningFailed(f"provisioning {slug!r} failed: {type(exc).__name__}") from exc
    if not same_db:
        with router.catalog_session() as session, session.begin():
            result = _activate(session, revision=revision, **activate)
    if claimed:
        pool.notify_low(on_pool_low, tenant.shard, remaining)
    return result


def _activate(session, *, tenant_id, revision, key_name, environment, created_by):
    tenant = session.get(Tenant, tenant_id, with_for_update=True)
    tenant.status, tenant.schema_revision = "active", revision
    key, secret = apikeys.issue(session, tenant_id=tenant.id, name=key_name, role="ADMIN",
                                environment=environment, created_by=created_by)
    session.flush()
    return tenant, key, secret


def _set_failed(router: Router, tenant_id: int, reason: str) -> None:
    with router.catalog_session() as session, session.begin():
        tenant = session.get(Tenant, tenant_id, with_for_update=True)
        tenant.status, tenant.failure_reason = "failed", reason


def get_tenant(router: Router, slug: str) -> Tenant:
    with router.catalog_session() as session:
        tenant = session.scalar(_by_slug(slug))
    if tenant is None:
        raise TenantNotFound(f"no tenant {slug!r}")
    return tenant


_TRANSITIONS = {
    "suspend": ({"active"}, "suspended"),
    "resume": ({"suspended"}, "active"),
}


def change_status(router: Router, slug: str, action: str) -> Tenant:
    allowed, target = _TRANSITIONS[action]
    with router.catalog_session() as session, session.begin():
        tenant = session.scalar(_by_slug(slug).with_for_update())
        if tenant is None:
            raise TenantNotFound(f"no tenant {slug!r}")
        if tenant.status == target:
            return tenant
        if tenant.status not in allowed:
            raise InvalidTransition(f"cannot {action} a tenant that is {tenant.status}")
        tenant.status = target
    routecache.forget_all()
    return tenant


def change_plan(router: Router, slug: str, plan: str) -> Tenant:
    with router.catalog_session() as session, session.begin():
        if session.get(Plan, plan) is None:
            raise UnknownPlan(f"unknown plan {plan!r}")
        tenant = session.scalar(_by_slug(slug).with_for_update())
        if tenant is None:
            raise TenantNotFound(f"no tenant {slug!r}")
        tenant.plan = plan
    routecache.forget_all()
    return tenant


def archive_tenant(router: Router, slug: str) -> Tenant:
    """Rename the schema out of the way (kept, restorable); requests then get 410."""
    with router.catalog_session() as session, session.begin():
        tenant = session.scalar(_by_slug(slug).with_for_update())
        if tenant is None:
            raise TenantNotFound(f"no tenant {slug!r}")
        if tenant.status == "archived":
            return tenant
        if tenant.status not in ("active", "suspended"):
            raise InvalidTransition(f"cannot archive a tenant that is {tenant.status}")
        archived = f"{tenant.schema_name}__archived_{int(time.time())}"
        with router.shard_engine(tenant.shard).begin() as conn:
            conn.exec_driver_sql(
                f"ALTER SCHEMA {quote_ident(tenant.schema_name)} RENAME TO {quote_ident(archived)}")
        tenant.status, tenant.archived_schema = "archived", archived
    routecache.forget_all()
    return tenant


def restore_tenant(router: Router, slug: str) -> Tenant:
    with router.catalog_session() as session, session.begin():
        tenant = session.scalar(_by_slug(slug).with_for_update())
        if tenant is None:
            raise TenantNotFound(f"no tenant {slug!r}")
        if tenant.status != "archived":
            raise InvalidTransition(f"cannot restore a tenant that is {tenant.status}")
        with router.shard_engine(tenant.shard).begin() as conn:
            conn.exec_driver_sql(
                f"ALTER SCHEMA {quote_ident(tenant.archived_schema)} RENAME TO {quote_ident(tenant.schema_name)}")
        tenant.status, tenant.archived_schema = "active", None
    routecache.forget_all()
    return tenant


def list_tenants(router: Router, *, limit: int, after_id: int | None = None,
                 status: str | None = None, newest_first: bool = False) -> list[Tenant]:
    query = select(Tenant).order_by(Tenant.id.desc() if newest_first else Tenant.id).limit(limit)
    if after_id is not None:
        query = query.where(Tenant.id > after_id)
    if status:
        query = query.where(Tenant.status == status)
    with router.catalog_session() as session:
        return list(session.scalars(query))


def load_tenant_ref(router: Router, slug: str):
    """The routing record of a tenant, or None (found ones are remembered for a moment: tenancy.routecache)."""
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        return None
    ref = routecache.lookup(("tenant", slug))
    if ref is not None:
        return ref
    with router.catalog_session() as session:
        tenant = session.scalar(_by_slug(slug))
    if tenant is None:
        return None
    ref = apikeys.tenant_ref(tenant)
    routecache.remember(("tenant", slug), ref)
    return ref
