"""Two PostgreSQL servers: placement, per-request and per-task routing, bounded pools, fleet migration over
both, and moving a tenant between them (every row kept, the tenant keeps working, undo)."""
import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

import workers.maintenance as tasks
from core import bootstrap
from core.jobs.models import Job
from core.platform import audit
from core.platform.actors import Actor
from tenancy import fleet, migrate, provisioning, shards
from tenancy.celery import HEADER
from tenancy.context import tenant_context
from tenancy.db import Router, get_router, tenant_transaction
from tenancy.migrate import upgrade_catalog
from tenancy.models import Tenant, TenantMove
from tests.conftest import unique_slug
from tests.integration.fleet_support import contents, fresh_database, schema_exists, tree_with_new_migration
from zixly_cli.main import main

SECOND = "second"


@pytest.fixture(scope="module")
def second_db(second_server):
    with fresh_database(second_server, prefix="zixly_shard2") as url:
        yield url


@pytest.fixture(scope="module")
def two_servers(app, second_db):
    """The shared test catalog gets a second shard on the other server, closed to placement outside tests
    that open it; tenants left on it are archived at the end so later fleet-wide work skips them."""
    router = get_router()
    if SECOND not in {s["name"] for s in shards.list_shards(router)}:
        shards.add_shard(router, SECOND, second_db, accepting=False)
    yield router
    shards.set_accepting(router, SECOND, False)
    with router.catalog_session() as s:
        left = s.scalars(select(Tenant.slug).where(Tenant.shard == SECOND, Tenant.status == "active")).all()
    for slug in left:
        provisioning.archive_tenant(router, slug)


def server_port(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT inet_server_port()")).scalar()


def test_placement_fills_the_emptier_server_and_staff_can_name_one(servers, second_db):
    with fresh_database(servers["DATABASE_URL"], prefix="zixly_place") as url:
        router = Router(url)
        upgrade_catalog(router.catalog_engine)
        shards.add_shard(router, SECOND, second_db)
        try:
            placed = [provisioning.create_tenant(router, slug=unique_slug("pl"), name="x")[0].shard
                      for _ in range(4)]
            assert sorted(placed) == ["default", "default", SECOND, SECOND]
            named = provisioning.create_tenant(router, slug=unique_slug("pl"), name="x", shard=SECOND)[0]
            assert named.shard == SECOND
            shards.set_accepting(router, SECOND, False)
            assert provisioning.create_tenant(router, slug=unique_slug("pl"), name="x")[0].shard == "default"
            with pytest.raises(provisioning.UnknownShard):
                provisioning.create_tenant(router, slug=unique_slug("pl"), name="x", shard=SECOND)
            listed = {s["name"]: s for s in shards.list_shards(router)}
            assert listed[SECOND]["tenants"] == 3 and listed["default"]["tenants"] == 3
            assert "postgres@" in listed[SECOND]["dsn"] and not listed[SECOND]["accepting"]
            with router.catalog_session() as s:  # clean the second server for the other tests
                on_second = s.scalars(select(Tenant.schema_name).where(Tenant.shard == SECOND)).all()
            with router.shard_engine(SECOND).begin() as conn:
                for name in on_second:
                    conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
        finally:
            router.dispose()


def test_each_request_and_task_lands_on_its_tenants_server(two_servers, make_tenant, client, settings):
    router = two_servers
    shards.set_accepting(router, SECOND, True)
    try:
        remote = provisioning.create_tenant(router, slug=unique_slug("far"), name="Far", shard=SECOND)
    finally:
        shards.set_accepting(router, SECOND, False)
    local = make_tenant("near")
    far_engine, near_engine = router.shard_engine(SECOND), router.shard_engine("default")
    assert server_port(far_engine) != server_port(near_engine)
    assert far_engine.pool.size() == settings.db_pool_size and far_engine.pool._recycle == settings.db_pool_recycle

    far_headers = {"X-API-Key": remote[2]}
    for headers, label in ((far_headers, "far"), (local.headers, "near")):
        r = client.post("/v1/api-keys", json={"name": f"{label}-key", "role": "VIEWER"}, headers=headers)
        assert r.status_code == 201, r.get_json()
    far_schema, near_schema = remote[0].schema_name, local.ref.schema
    assert schema_exists(far_engine, far_schema) and not schema_exists(near_engine, far_schema)
    assert schema_exists(near_engine, near_schema) and not schema_exists(far_engine, near_schema)
    with far_engine.connect() as conn:  # the write of the request went to the far server
        assert conn.exec_driver_sql(f'SELECT count(*) FROM "{far_schema}".audit_log'
                                    " WHERE action = 'api_key.created'").scalar() == 1
    body = client.get("/v1/audit-log", headers=far_headers).get_json()
    assert {e["action"] for e in body["items"]} == {"api_key.created"}

    summary = tasks.audit_summary.apply(headers={HEADER: remote[0].slug}).get()  # a task, routed by header
    assert summary == {"tenant": remote[0].slug, "audit_entries": 1, "targets": [summary["targets"][0]]}


def seed(tenant_ref, n=25):
    with tenant_context(tenant_ref):
        for i in range(n):
            audit.record_now(actor=Actor("system", "seed"), action="seed", target_id=str(i),
                             details={"i": i, "text": "é ü \u2603"})
        with tenant_transaction() as s:
            for i in range(n):
                s.add(Job(workflow="echo", input={"i": i}, status="COMPLETED", result={"ok": i}))


@pytest.fixture()
def cli(settings, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    yield CliRunner()
    bootstrap.init(settings)


def test_a_move_keeps_every_row_the_tenant_keeps_working_and_undo_brings_it_back(
        two_servers, make_tenant, client, cli):
    router = two_servers
    t = make_tenant("mover")
    seed(t.ref)
    schema = t.ref.schema
    near, far = router.shard_engine("default"), router.shard_engine(SECOND)
    with near.connect() as conn:
        before = contents(conn, schema)
    assert len(before["jobs"]) == 25 and len(before["audit_log"]) == 26

    r = cli.invoke(main, ["tenants", "move", t.slug, "--to", SECOND])
    assert r.exit_code == 0, r.output
    assert f"moved default -> {SECOND}" in r.output and "verified" in r.output
    tenant = provisioning.get_tenant(router, t.slug)
    assert (tenant.shard, tenant.status) == (SECOND, "active")
    with far.connect() as conn:
        after = contents(conn, schema)
    moved = [row for row in after["audit_log"] if "tenant.moved" in row]  # audited, on the new server
    assert len(moved) == 1
    after["audit_log"].remove(moved[0])
    assert after == before
    move = shards.last_move(router, t.slug)
    assert move.status == "done" and move.row_counts["jobs"] == 25 and move.leftover_schema.startswith(schema)
    assert not schema_exists(near, schema) and schema_exists(near, move.leftover_schema)

    jobs = client.get("/v1/jobs?limit=100", headers=t.headers).get_json()["items"]
    assert len(jobs) == 25
    r = client.post("/v1/api-keys", json={"name": "after-move", "role": "VIEWER"}, headers=t.headers)
    assert r.status_code == 201
    with tenant_context(provisioning.load_tenant_ref(router, t.slug)), tenant_transaction() as s:
        s.add(Job(workflow="echo", input={"after": "move"}, status="QUEUED"))  # identity + uuid rows continue
        s.flush()
    with far.connect() as conn:
        assert conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}".jobs').scalar() == 26

    r = cli.invoke(main, ["tenants", "move", t.slug, "--undo"])
    assert r.exit_code == 0, r.output
    tenant = provisioning.get_tenant(router, t.slug)
    assert (tenant.shard, tenant.status) == ("default", "active")
    with near.connect() as conn:
        back = contents(conn, schema)
    assert len(back["jobs"]) == 26 and set(before["jobs"]) <= set(back["jobs"])
    assert client.get("/v1/tenant", headers=t.headers).get_json()["slug"] == t.slug
    assert len(client.get("/v1/jobs?limit=100", headers=t.headers).get_json()["items"]) == 26

    r = cli.invoke(main, ["tenants", "move-cleanup", t.slug])
    assert r.exit_code == 0 and "dropped 2" in r.output, r.output
    assert not schema_exists(near, move.leftover_schema) and not schema_exists(far, schema)
    assert schema_exists(near, schema)


def test_a_failed_move_changes_nothing(two_servers, make_tenant, client):
    router = two_servers
    t = make_tenant("stuck")
    seed(t.ref, 3)
    far = router.shard_engine(SECOND)
    with far.begin() as conn:  # something is in the way on the target
        conn.exec_driver_sql(f'CREATE SCHEMA "{t.ref.schema}"')
    try:
        with pytest.raises(shards.MoveFailed, match="already exists"):
            shards.move_tenant(router, t.slug, SECOND)
    finally:
        with far.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{t.ref.schema}"')
    tenant = provisioning.get_tenant(router, t.slug)
    assert (tenant.shard, tenant.status) == ("default", "active")
    with router.catalog_session() as s:
        assert s.scalar(select(TenantMove.status).where(TenantMove.tenant_id == tenant.id)) == "failed"
    assert len(client.get("/v1/jobs", headers=t.headers).get_json()["items"]) == 3
    with pytest.raises(shards.ShardError, match="no move to undo"):
        shards.undo_move(router, t.slug)


def test_an_open_write_is_moved_and_a_stale_write_fails_rather_than_land_in_the_old_copy(two_servers, make_tenant):
    """The move waits for a writer already in its transaction and carries its row; a write still aimed at the
    old server afterwards finds no table (it does not vanish into the kept copy)."""
    import threading

    router = two_servers
    t = make_tenant("race")
    near = router.shard_engine("default")
    writer = near.connect()
    writer.exec_driver_sql(f'INSERT INTO "{t.ref.schema}".outbox (task, args) VALUES (\'x\', \'[]\')')
    outcome = {}
    mover = threading.Thread(target=lambda: outcome.setdefault("move", _move(router, t.slug)))
    mover.start()  # waits for the open writer to finish
    writer.commit()
    mover.join(timeout=30)
    late = near.connect()
    with pytest.raises(Exception, match="does not exist"):
        late.exec_driver_sql(f'INSERT INTO "{t.ref.schema}".outbox (task, args) VALUES (\'y\', \'[]\')')
    late.close()
    writer.close()
    assert outcome["move"].status == "done"
    with router.shard_engine(SECOND).connect() as conn:
        assert conn.exec_driver_sql(f'SELECT count(*) FROM "{t.ref.schema}".outbox').scalar() == 1
    shards.undo_move(router, t.slug)
    shards.drop_leftovers(router, t.slug)


def _move(router, slug):
    return shards.move_tenant(router, slug, SECOND)


def test_a_fleet_migration_covers_tenants_on_both_servers(servers, second_server, tmp_path, monkeypatch):
    with fresh_database(servers["DATABASE_URL"], prefix="zixly_fl2") as url, \
            fresh_database(second_server, prefix="zixly_fl2b") as url2:
        router = Router(url)
        upgrade_catalog(router.catalog_engine)
        shards.add_shard(router, SECOND, url2)
        try:
            made = [provisioning.create_tenant(router, slug=unique_slug("both"), name="x")[0] for _ in range(4)]
            assert {t.shard for t in made} == {"default", SECOND}
            monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
            result = fleet.upgrade_fleet(router, jobs=3)
            assert result.ok and len(result.migrated) == 4
            for t in made:
                assert schema_exists(router.shard_engine(t.shard), t.schema_name)
                with router.shard_engine(t.shard).connect() as conn:
                    assert conn.exec_driver_sql(f'SELECT version_num FROM "{t.schema_name}".alembic_version'
                                                ).scalar() == "t9999"
            assert fleet.upgrade_fleet(router).noop
        finally:
            router.dispose()
