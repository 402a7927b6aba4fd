"""Fast provisioning: a pooled schema renamed to the tenant equals a schema migrated from scratch."""
import pytest
from sqlalchemy import text

from tenancy import citus, fleet, migrate, pool, provisioning, schemas
from tenancy.db import Router
from tenancy.migrate import upgrade_catalog, upgrade_tenant
from tests.conftest import unique_slug
from tests.integration.fleet_support import contents, fresh_database, schema_exists, tree_with_new_migration


@pytest.fixture()
def pool_db(servers):
    with fresh_database(servers["DATABASE_URL"], prefix="zixly_pool") as url:
        router = Router(url, pool_size=2, max_overflow=4)
        upgrade_catalog(router.catalog_engine)
        yield router
        router.dispose()


def pooled(router):
    with router.catalog_engine.connect() as conn:
        return set(conn.execute(text("SELECT schema_name FROM catalog.schema_pool")).scalars())


def test_a_pooled_schema_equals_one_migrated_from_scratch(pool_db, monkeypatch):
    lows = []
    assert pool.refill(pool_db, target=3, jobs=2) == {"default": 3}
    before = pooled(pool_db)
    assert len(before) == 3 and all(schema_exists(pool_db.catalog_engine, s) for s in before)

    tenant, _, secret = provisioning.create_tenant(pool_db, slug=unique_slug("pool"), name="Pooled",
                                                   on_pool_low=lambda shard, remaining: lows.append((shard, remaining)))
    taken = before - pooled(pool_db)
    assert len(taken) == 1 and not schema_exists(pool_db.catalog_engine, taken.pop())  # renamed, not copied
    assert tenant.status == "active" and tenant.schema_revision == migrate.tenant_head() and secret
    assert lows == [("default", 2)]

    with pool_db.catalog_engine.begin() as conn:
        conn.exec_driver_sql('CREATE SCHEMA "t_scratch"')
        upgrade_tenant(conn, "t_scratch")  # every migration, one by one, online
    with pool_db.catalog_engine.connect() as conn:
        fast, slow = schemas.describe(conn, tenant.schema_name), schemas.describe(conn, "t_scratch")
        fast_rows, slow_rows = contents(conn, tenant.schema_name, timeless=True), contents(conn, "t_scratch",
                                                                                            timeless=True)
    for part in ("tables", "columns", "constraints", "indexes", "sequences", "sequence_owners"):
        assert fast[part], part
    assert fast == slow
    assert fast_rows == slow_rows and fast_rows["alembic_version"]
    assert fast_rows["workflow_settings"] == []  # 0002's echo seed, removed by t0008 on both paths (opt-in)

    with pool_db.catalog_engine.begin() as conn:  # the comparison sees a one-default difference
        conn.exec_driver_sql('ALTER TABLE "t_scratch".jobs ALTER COLUMN max_attempts SET DEFAULT 5')
    with pool_db.catalog_engine.connect() as conn:
        assert schemas.describe(conn, "t_scratch") != fast


def test_refill_tops_up_and_a_new_head_discards_stale_pooled_schemas(pool_db, tmp_path, monkeypatch):
    pool.refill(pool_db, target=2)
    provisioning.create_tenant(pool_db, slug=unique_slug("pool"), name="x")
    assert len(pooled(pool_db)) == 1
    assert pool.refill(pool_db, target=2) == {"default": 1} and len(pooled(pool_db)) == 2
    old = pooled(pool_db)

    monkeypatch.setattr(migrate, "TENANT_DIR", tree_with_new_migration(tmp_path))
    assert fleet.check_fleet(pool_db, migrate.tenant_head()).stale_pool == 2
    result = fleet.upgrade_fleet(pool_db)
    assert result.ok and len(result.migrated) == 1
    assert not pooled(pool_db) and not any(schema_exists(pool_db.catalog_engine, s) for s in old)
    pool.refill(pool_db, target=2)
    assert pool.counts(pool_db) == {("default", "t9999"): 2}
    tenant = provisioning.create_tenant(pool_db, slug=unique_slug("pool"), name="x")[0]
    assert tenant.schema_revision == "t9999" and len(pooled(pool_db)) == 1
    assert fleet.upgrade_fleet(pool_db).noop


def test_a_pooled_schema_that_went_missing_falls_back_to_the_script(pool_db, monkeypatch):
    pool.refill(pool_db, target=1)
    [name] = pooled(pool_db)
    with pool_db.catalog_engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{name}" CASCADE')
    tenant = provisioning.create_tenant(pool_db, slug=unique_slug("pool"), name="x")[0]
    assert tenant.status == "active" and schema_exists(pool_db.catalog_engine, tenant.schema_name)
    assert not pooled(pool_db)


def test_orphaned_pool_schemas_are_swept_by_the_next_refill(pool_db):
    with pool_db.catalog_engine.begin() as conn:
        migrate.create_tenant_schema(conn, "zp_orphan0000000")  # created, never recorded (a crash)
    pool.refill(pool_db, target=1)
    assert not schema_exists(pool_db.catalog_engine, "zp_orphan0000000") and len(pooled(pool_db)) == 1


def test_citus_shards_create_distributed_schemas_and_skip_the_pool(pool_db, monkeypatch):
    """Plain PostgreSQL accepts the Citus setting as a placeholder, so the statements can run here."""
    with pool_db.catalog_engine.connect() as conn:
        assert citus.capability(conn) is None
    assert citus.prelude(pool_db, "default") == ""
    pool.refill(pool_db, target=1)
    pool_db.capabilities[("citus", "default")] = (12, 1)  # as if the shard had Citus 12.1
    from sqlalchemy import event

    seen = []
    event.listen(pool_db.catalog_engine, "before_cursor_execute", lambda c, cur, st, *a: seen.append(st))
    tenant = provisioning.create_tenant(pool_db, slug=unique_slug("citus"), name="x")[0]
    creates = [s for s in seen if "CREATE SCHEMA" in s]
    assert len(creates) == 1 and creates[0].startswith(
        "SET LOCAL citus.enable_schema_based_sharding TO on;\nCREATE SCHEMA " + f'"{tenant.schema_name}"')
    assert len(pooled(pool_db)) == 1  # the pool was not used on a Citus shard
    assert pool.refill(pool_db, target=5) == {}
