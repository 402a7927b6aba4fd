"""Fleet migrations: the catalog first, then every tenant schema not yet at the tenant head, in parallel.

Each tenant is migrated in its own transaction on its own shard, with `lock_timeout`, from the revision its
schema actually has (read under FOR UPDATE, so a run interrupted between the schema's commit and the catalog's
record resumes correctly and two runs never migrate one schema twice). The SQL for each starting revision is
rendered once by Alembic's offline mode and sent in one round trip; steps that must run online are run online,
one at a time. The catalog records each tenant's revision, so a rerun starts where the last one stopped; a
tenant whose migration fails is quarantined (marked with the error) and the others go on. A fleet already at
the head costs one catalog query.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from tenancy.db import Router
from tenancy.migrate import catalog_head, quote_ident, tenant_head, upgrade_catalog, upgrade_sql, upgrade_tenant
from tenancy.models import Tenant

MIGRATABLE = ("active", "suspended")
FLEET_LOCK_KEY = 0x7A69786C79  # pg advisory lock: one fleet run at a time ("zixly")


class FleetBusy(RuntimeError):
    """Another fleet migration holds the fleet lock."""


@dataclass
class FleetResult:
    head: str
    total: int = 0
    migrated: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # schema already at head; only the catalog caught up
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # quarantined, left alone (--skip-quarantined)
    catalog_upgraded: bool = False
    noop: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


@dataclass(frozen=True)
class FleetCheck:
    catalog_revision: str | None
    behind: int
    stale_pool: int


_CHECK = text("""
    SELECT (SELECT version_num FROM catalog.alembic_version) AS catalog_revision,
           (SELECT count(*) FROM catalog.tenants
             WHERE status IN ('active', 'suspended') AND schema_revision IS DISTINCT FROM :head) AS behind,
           (SELECT count(*) FROM catalog.schema_pool WHERE revision <> :head) AS stale_pool
""")


def check_fleet(router: Router, head: str) -> FleetCheck | None:
    """One catalog query: is anything behind? None when the catalog is too old (or absent) to say."""
    try:
        with router.catalog_engine.connect() as conn:
            row = conn.execute(_CHECK, {"head": head}).one()
    except DBAPIError:
        return None
    return FleetCheck(row.catalog_revision, row.behind, row.stale_pool)


def pending_tenants(router: Router, head: str, *, include_quarantined: bool = True) -> list[Tenant]:
    """One catalog query: tenants whose recorded revision is not the head, quarantined ones last."""
    query = (select(Tenant).where(Tenant.status.in_(MIGRATABLE), Tenant.schema_revision.is_distinct_from(head))
             .order_by(Tenant.quarantined_at.is_not(None), Tenant.id))
    if not include_quarantined:
        query = query.where(Tenant.quarantined_at.is_(None))
    with router.catalog_session() as session:
        return list(session.scalars(query))


def fleet_status(router: Router) -> dict:
    """How many tenants are at each revision, per shard; the quarantined ones with their errors."""
    with router.catalog_engine.connect() as conn:
        revisions = conn.execute(text(
            "SELECT shard, schema_revision, count(*) FROM catalog.tenants WHERE status IN ('active','suspended')"
            " GROUP BY 1, 2 ORDER BY 1, 2")).all()
        quarantined = conn.execute(text(
            "SELECT slug, schema_revision, migration_error FROM catalog.tenants WHERE quarantined_at IS NOT NULL"
            " ORDER BY quarantined_at")).all()
        other = conn.execute(text(
            "SELECT status, count(*) FROM catalog.tenants WHERE status NOT IN ('active','suspended')"
            " GROUP BY 1 ORDER BY 1")).all()
        catalog_revision = conn.execute(text("SELECT version_num FROM catalog.alembic_version")).scalar()
    by_revision = Counter()
    for _shard, revision, n in revisions:
        by_revision[revision] += n
    return {"head": tenant_head(), "catalog_revision": catalog_revision, "catalog_head": catalog_head(),
            "by_revision": dict(by_revision), "by_shard": [tuple(r) for r in revisions],
            "quarantined": [tuple(r) for r in quarantined], "other_statuses": dict(other)}


@contextmanager
def fleet_lock(router: Router):
    """Hold the fleet advisory lock (on the catalog database) for the block; FleetBusy if someone has it.

    The lock is transaction-level, in a transaction kept open on its own connection for the block: exclusive
    behind a transaction-pooling PgBouncer too, and released by the server if this process dies."""
    with router.catalog_engine.connect() as conn:
        got = conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FLEET_LOCK_KEY}).scalar()
        if not got:
            conn.rollback()
            raise FleetBusy("another fleet migration is running (advisory lock held)")
        try:
            yield
        finally:
            conn.rollback()  # the lock's transaction changed nothing


class _Migrator:
    """Migrates one tenant at a time on a per-shard engine sized for the run; called from worker threads."""

    def __init__(self, router: Router, head: str, *, jobs: int, lock_timeout: str, location: Path | None):
        self.router, self.head, self.location, self.lock_timeout = router, head, location, lock_timeout
        self.jobs = jobs
        self._engines: dict[str, tuple[Engine, bool]] = {}
        self._lock = threading.Lock()
        self.catalog = create_engine(router.catalog_url, pool_size=2, max_overflow=jobs,
                                     connect_args={"prepare_threshold": None})

    def engine(self, shard: str) -> tuple[Engine, bool]:
        """The shard's engine for this run and whether it is the catalog's own database (one transaction)."""
        with self._lock:
            return self._engines.get(shard) or self._open(shard)

    def _open(self, shard: str) -> tuple[Engine, bool]:
        if shard not in self._engines:
            url = self.router.shard_url(shard)
            same = url is None
            engine = create_engine(url or self.router.catalog_url, pool_size=self.jobs, max_overflow=0,
                                   connect_args={"prepare_threshold": None})
            self._engines[shard] = (engine, same)
        return self._engines[shard]

    def prepare(self, tenants: list[Tenant]) -> None:
        """Render the SQL for every starting revision once, before the threads start."""
        for revision in {t.schema_revision for t in tenants}:
            try:
                upgrade_sql(revision, self.head, location=self.location)
            except Exception:  # noqa: BLE001  an unknown revision fails its tenants, not the run
                pass

    def migrate(self, tenant: Tenant) -> str:
        """Return 'migrated' or 'recorded'; raise on failure (the caller quarantines)."""
        engine, same_db = self.engine(tenant.shard)
        schema = quote_ident(tenant.schema_name)
        with engine.begin() as conn:
            conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": self.lock_timeout})
            actual = conn.exec_driver_sql(f"SELECT version_num FROM {schema}.alembic_version FOR UPDATE").scalar()
            outcome = "recorded" if actual == self.head else "migrated"
            if actual != self.head:
                script = upgrade_sql(actual, self.head, location=self.location)
                if script is None:
                    upgrade_tenant(conn, tenant.schema_name, target=self.head, location=self.location)
                else:
                    conn.exec_driver_sql(f"SET LOCAL search_path TO {schema};\n{script}\n"
                                         "SET LOCAL search_path TO pg_catalog;")
            if same_db:  # the schema and its record commit together
                self._record(conn, tenant.id)
        if not same_db:
            with self.catalog.begin() as conn:
                self._record(conn, tenant.id)
        return outcome

    def _record(self, conn, tenant_id: int) -> None:
        conn.execute(update(Tenant).where(Tenant.id == tenant_id)
                     .values(schema_revision=self.head, quarantined_at=None, migration_error=None))

    def quarantine(self, tenant: Tenant, reason: str) -> None:
        with self.catalog.begin() as conn:
            conn.execute(text("UPDATE catalog.tenants SET quarantined_at = now(), migration_error = :e"
                              " WHERE id = :i"), {"e": reason, "i": tenant.id})

    def dispose(self) -> None:
        for engine, _ in self._engines.values():
            engine.dispose()
        self.catalog.dispose()


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {str(orig).strip().splitlines()[0] if str(orig).strip() else ''}"[:500]


def upgrade_fleet(router: Router, *, jobs: int = 4, lock_timeout: str = "5s", skip_quarantined: bool = False,
                  on_start=None, on_tenant=None, location: Path | None = None) -> FleetResult:
    """Migrate the catalog, then every tenant behind the head with `jobs` parallel workers.

    `on_start(total)` is called once the work is known, `on_tenant(slug)` after each tenant (from this thread).
    An exception raised by `on_tenant` (or Ctrl-C) stops the run: tenants not started are left for the next
    run, the ones in flight finish first.
    """
    started = time.monotonic()
    head = tenant_head(location)
    result = FleetResult(head=head)
    check = check_fleet(router, head)
    if check and check.catalog_revision == catalog_head() and not check.behind and not check.stale_pool:
        result.noop, result.elapsed = True, time.monotonic() - started
        if on_start:
            on_start(0)
        return result
    with fleet_lock(router):
        if check is None or check.catalog_revision != catalog_head():
            upgrade_catalog(router.catalog_engine)
            result.catalog_upgraded = True
        from tenancy import pool  # the pool imports provisioning pieces; keep the no-op path light

        pool.discard_stale(router, head, location=location)
        tenants = pending_tenants(router, head)
        if skip_quarantined:
            result.skipped = [t.slug for t in tenants if t.quarantined_at is not None]
            tenants = [t for t in tenants if t.quarantined_at is None]
        result.total = len(tenants)
        if on_start:
            on_start(len(tenants))
        migrator = _Migrator(router, head, jobs=max(1, jobs), lock_timeout=lock_timeout, location=location)
        try:
            migrator.prepare(tenants)
            _run(migrator, tenants, result, max(1, jobs), on_tenant)
        finally:
            migrator.dispose()
    result.elapsed = time.monotonic() - started
    return result


def _run(migrator: _Migrator, tenants: list[Tenant], result: FleetResult, jobs: int, on_tenant) -> None:
    def one(tenant: Tenant):
        try:
            return tenant, migrator.migrate(tenant), None
        except Exception as exc:  # one tenant's failure does not stop the fleet
            reason = _reason(exc)
            try:
                migrator.quarantine(tenant, reason)
            except Exception as inner:  # noqa: BLE001  still report the tenant as failed
                reason += f" (and it could not be quarantined: {_reason(inner)})"
            return tenant, "failed", reason

    executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="fleet")
    running: set = set()
    try:
        for tenant in tenants:  # at most 2×jobs submitted, so a stop leaves the rest untouched
            running.add(executor.submit(one, tenant))
            while len(running) >= 2 * jobs:
                _collect(running, result, on_tenant)
        while running:
            _collect(running, result, on_tenant)
    except BaseException:
        for future in running:
            future.cancel()
        executor.shutdown(wait=True)
        for future in running:  # the ones in flight finished (committed or rolled back): count them
            if not future.cancelled():
                _note(future.result(), result)
        raise
    executor.shutdown(wait=True)


def _collect(running: set, result: FleetResult, on_tenant) -> None:
    done, _ = wait(running, return_when=FIRST_COMPLETED)
    for future in done:
        running.discard(future)
        tenant = _note(future.result(), result)
        if on_tenant:
            on_tenant(tenant.slug)


def _note(outcome, result: FleetResult) -> Tenant:
    tenant, what, reason = outcome
    if what == "failed":
        result.failed[tenant.slug] = reason
    else:
        getattr(result, what).append(tenant.slug)
    return tenant
