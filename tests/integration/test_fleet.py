"""Fleet migrations: parallel, quarantining failures, resumable, bounded by lock_timeout, one query when idle.

Each test gets its own catalog database, so moving the tenant head here never touches the shared test fleet.
"""
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from core import bootstrap
from tenancy import fleet, migrate, provisioning, schemas
from tenancy.db import Router
from tenancy.migrate import tenant_head, upgrade_catalog, upgrade_tenant
from tenancy.models import Tenant
from tests.conftest import unique_slug
from tests.integration.fleet_support import contents, fresh_database, tree_with_new_migration
from zixly_cli.main import main


@pytest.fixture()
def fleet_db(servers):
    with fresh_database(servers["DATABASE_URL"]) as url:
        router = Router(url, pool_size=2, max_overflow=4)
        upgrade_catalog(router.catalog_engine)
        yield router
        router.dispose()


def make_tenants(router, n, prefix="fl"):
    return [provisioning.create_tenant(router, slug=unique_slug(prefix), name="Fleet")[0] for _ in range(n)]


def revisions(router):
    with router.catalog_session() as s:
        return {t.slug: (t.schema_revision, t.quarantined_at is not None, t.migration_error)
                for t in s.scalars(select(Tenant))}


def has_column(router, schema, table, column):
    with router.catalog_engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM information_schema.columns WHERE table_schema = :s"
                                 " AND table_name = :t AND column_name = :c"),
                            {"s": schema, "t": table, "c": column}).scalar() == 1


def test_a_fleet_at_head_costs_one_catalog_query(fleet_db):
    make_tenants(fleet_db, 3)
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        result = fleet.upgrade_fleet(fleet_db)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert result.noop and result.total == 0
    assert len(statements) == 1, statements
    assert "catalog.tenants" in statements[0]


def test_one_failing_tenant_is_quarantined_the_others_migrate_and_a_rerun_completes(
        fleet_db, tmp_path, monkeypatch):
    tenants = make_tenants(fleet_db, 5)
    old_head = tenant_head()
    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
    broken = tenants[2]
    with fleet_db.catalog_engine.begin() as conn:  # the migration's table already exists there: it fails
        conn.exec_driver_sql(f'CREATE TABLE "{broken.schema_name}".notes (id int)')

    result = fleet.upgrade_fleet(fleet_db, jobs=3)
    assert set(result.failed) == {broken.slug} and "DuplicateTable" in result.failed[broken.slug]
    assert sorted(result.migrated) == sorted(t.slug for t in tenants if t is not broken)
    state = revisions(fleet_db)
    assert state[broken.slug][:2] == (old_head, True) and "notes" in state[broken.slug][2]
    assert all(state[t.slug] == ("t9999", False, None) for t in tenants if t is not broken)
    assert not has_column(fleet_db, broken.schema_name, "jobs", "priority")  # its transaction rolled back
    assert all(has_column(fleet_db, t.schema_name, "jobs", "priority") for t in tenants if t is not broken)

    skipped = fleet.upgrade_fleet(fleet_db, skip_quarantined=True)
    assert skipped.skipped == [broken.slug] and not skipped.ok and not skipped.migrated

    with fleet_db.catalog_engine.begin() as conn:  # fixed by hand; a plain rerun retries it
        conn.exec_driver_sql(f'DROP TABLE "{broken.schema_name}".notes')
    rerun = fleet.upgrade_fleet(fleet_db)
    assert rerun.ok and rerun.migrated == [broken.slug]
    assert revisions(fleet_db)[broken.slug] == ("t9999", False, None)
    assert fleet.upgrade_fleet(fleet_db).noop


def test_the_rendered_upgrade_equals_alembic_run_online(fleet_db, tmp_path, monkeypatch):
    """The fleet sends Alembic's offline rendering in one round trip; it must build what Alembic online does."""
    [tenant] = make_tenants(fleet_db, 1)
    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
    assert fleet.upgrade_fleet(fleet_db).migrated == [tenant.slug]
    with fleet_db.catalog_engine.begin() as conn:
        conn.exec_driver_sql('CREATE SCHEMA "t_online"')
        upgrade_tenant(conn, "t_online")  # every step, online, from nothing
    with fleet_db.catalog_engine.connect() as conn:
        fast, online = schemas.describe(conn, tenant.schema_name), schemas.describe(conn, "t_online")
        data = contents(conn, tenant.schema_name, timeless=True)
        assert data == contents(conn, "t_online", timeless=True)
        # the data steps ran on both paths: 0002 seeds echo, t0008 removes the untouched seed (echo is opt-in)
        assert data["workflow_settings"] == [] and data["alembic_version"] == ["(t9999)"]
    assert any("priority" in str(row) for row in fast["columns"]) and fast["indexes"] and fast["sequences"]
    assert fast == online


def test_an_interrupted_run_resumes_where_it_stopped(fleet_db, tmp_path, monkeypatch):
    tenants = make_tenants(fleet_db, 8)
    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
    seen = []

    def crash_after_two(slug):
        seen.append(slug)
        if len(seen) == 2:
            raise KeyboardInterrupt  # Ctrl-C, or the deploy killed

    with pytest.raises(KeyboardInterrupt):
        fleet.upgrade_fleet(fleet_db, jobs=2, on_tenant=crash_after_two)
    state = revisions(fleet_db)
    done = [t for t in tenants if state[t.slug][0] == "t9999"]
    assert 2 <= len(done) < len(tenants)

    # the crash window between a schema's commit and the catalog's record: the schema is at t9999 already
    lagging = done[0]
    with fleet_db.catalog_engine.begin() as conn:
        conn.execute(text("UPDATE catalog.tenants SET schema_revision = 't0002' WHERE id = :i"), {"i": lagging.id})
    rerun = fleet.upgrade_fleet(fleet_db, jobs=2)
    assert rerun.ok and rerun.recorded == [lagging.slug]
    assert sorted(rerun.migrated) == sorted(t.slug for t in tenants if t not in done)
    assert all(rev == "t9999" for rev, _, _ in revisions(fleet_db).values())


def test_a_busy_tenant_times_out_and_does_not_stall_the_fleet(fleet_db, tmp_path, monkeypatch):
    tenants = make_tenants(fleet_db, 3)
    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
    busy = tenants[0]
    holder = fleet_db.catalog_engine.connect()
    holder.exec_driver_sql(f'LOCK TABLE "{busy.schema_name}".jobs IN ACCESS SHARE MODE')  # a long report
    try:
        result = fleet.upgrade_fleet(fleet_db, jobs=2, lock_timeout="300ms")
    finally:
        holder.rollback()
        holder.close()
    assert list(result.failed) == [busy.slug] and "LockNotAvailable" in result.failed[busy.slug]
    assert sorted(result.migrated) == sorted(t.slug for t in tenants[1:])
    assert result.elapsed < 20


def test_a_step_that_reads_data_runs_online(fleet_db, tmp_path, monkeypatch):
    tenants = make_tenants(fleet_db, 3)
    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path, online=True))
    assert migrate.upgrade_sql("t0002") is None
    result = fleet.upgrade_fleet(fleet_db, jobs=3)
    assert result.ok and len(result.migrated) == 3
    with fleet_db.catalog_engine.connect() as conn:
        for t in tenants:
            assert conn.exec_driver_sql(f'SELECT body FROM "{t.schema_name}".notes').scalar() == "audit rows: 0"


def test_two_runs_at_once_are_refused(fleet_db, tmp_path, monkeypatch):
    make_tenants(fleet_db, 1)
    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
    with fleet.fleet_lock(fleet_db):
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.setdefault("r", _try(fleet_db)))
        thread.start()
        thread.join()
    assert isinstance(outcome["r"], fleet.FleetBusy)


def _try(router):
    try:
        return fleet.upgrade_fleet(router)
    except Exception as exc:  # noqa: BLE001
        return exc


@pytest.fixture()
def cli(fleet_db, settings, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", fleet_db.catalog_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    yield CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    bootstrap.init(settings)


def test_cli_upgrade_names_failures_exits_1_and_status_shows_them(cli, fleet_db, tmp_path, monkeypatch):
    tenants = make_tenants(fleet_db, 3)
    before = migrate.tenant_head()  # where the fleet stands before the new migration
    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
    broken = tenants[1]
    with fleet_db.catalog_engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{broken.schema_name}".notes (id int)')
    r = cli.invoke(main, ["db", "upgrade", "--jobs", "2"])
    assert r.exit_code == 1
    assert f"FAILED {broken.slug} (quarantined)" in r.stderr and "2 migrated, 0 already there" in r.stdout
    r = cli.invoke(main, ["db", "status"])
    assert r.exit_code == 1 and f"QUARANTINED {broken.slug} at {before}" in r.stdout
    assert "t9999" in r.stdout and "head" in r.stdout
    with fleet_db.catalog_engine.begin() as conn:
        conn.exec_driver_sql(f'DROP TABLE "{broken.schema_name}".notes')
    r = cli.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0 and "nothing to do" in r.stdout
    assert cli.invoke(main, ["db", "status"]).exit_code == 0
    assert cli.invoke(main, ["db", "upgrade", "--lock-timeout", "5 s; drop"]).exit_code == 2
