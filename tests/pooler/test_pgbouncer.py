"""Zixly behind a real PgBouncer in transaction-pooling mode (Debian's pgbouncer): every transaction may run on
another server connection, and a server connection serves whichever client comes next — so tenant routing,
the API's reads and writes and the fleet's locks must carry no state on a connection.

`make test` also runs tests/api/test_isolation.py with the whole session behind PgBouncer
(ZIXLY_TEST_THROUGH_PGBOUNCER=1, tests/conftest.py).
"""
import dataclasses
import threading

import psycopg
import pytest
from sqlalchemy.engine import make_url

from core import bootstrap
from devstack.pgbouncer import PgBouncer
from tenancy import fleet, pool
from tenancy.db import get_router
from tests.conftest import unique_slug

THREADS = 8


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def database(database_url):
    return make_url(database_url).database


@pytest.fixture(scope="module")
def bouncer(servers, tmp_path_factory):
    bouncer = PgBouncer(tmp_path_factory.mktemp("pgbouncer"), servers["DATABASE_URL"], pool_size=2).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture()
def behind_bouncer(app, settings, bouncer, database):
    """The process's database routing through PgBouncer (10 client connections over its 2 server ones)."""
    bootstrap.init(dataclasses.replace(settings, database_url=bouncer.url(database), db_pool_size=10,
                                       db_max_overflow=0))
    yield
    bootstrap.init(settings)


def server_connections(bouncer: PgBouncer, database: str) -> int:
    with psycopg.connect(_libpq(bouncer.url("pgbouncer")), autocommit=True, prepare_threshold=None) as admin:
        rows = admin.execute("SHOW SERVERS").fetchall()
        columns = [c.name for c in admin.execute("SHOW SERVERS").description]
    return sum(1 for row in rows if dict(zip(columns, row, strict=False))["database"] == database)


def test_the_pooler_really_shares_server_connections_between_clients(servers, tmp_path, database):
    """The harness is real: a session-level SET made by one client is seen by the next client of the same server
    connection (what Zixly must never do, and what the tests below would catch)."""
    single = PgBouncer(tmp_path / "single", servers["DATABASE_URL"], pool_size=1).start()
    try:
        url = _libpq(single.url(database))
        with psycopg.connect(url, autocommit=True) as one, psycopg.connect(url, autocommit=True) as two:
            one.execute("SET search_path TO leaked_by_another_client")
            assert two.execute("SHOW search_path").fetchone()[0] == "leaked_by_another_client"
    finally:
        single.stop()


def test_twenty_tenants_interleaved_over_two_server_connections(behind_bouncer, bouncer, database, make_tenant):
    from api.app import create_app

    app = create_app(bootstrap.runtime.settings())
    tenants = [make_tenant("pgb") for _ in range(20)]
    errors: list[str] = []

    def worker(mine):
        client = app.test_client()
        for round_ in range(3):
            for t in mine:
                made = client.post("/v1/api-keys", json={"name": f"{t.slug}-{round_}", "role": "VIEWER"},
                                   headers=t.headers)
                if made.status_code != 201:
                    errors.append(f"{t.slug}: create {made.status_code}")
                names = {k["name"] for k in client.get("/v1/api-keys?limit=200", headers=t.headers)
                         .get_json()["items"]}
                if not all(n == "initial admin key" or n.startswith(t.slug) for n in names):
                    errors.append(f"{t.slug} sees {sorted(names)}")
                entries = client.get("/v1/audit-log?limit=200", headers=t.headers).get_json()["items"]
                if any(e["target_type"] == "tenant" and e["target_id"] != t.slug for e in entries):
                    errors.append(f"{t.slug} sees another tenant's audit entries")

    threads = [threading.Thread(target=worker, args=(tenants[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for t in tenants:  # every write landed in its own tenant, once
        keys = app.test_client().get("/v1/api-keys?limit=200", headers=t.headers).get_json()["items"]
        assert sorted(k["name"] for k in keys) == sorted(["initial admin key"] + [f"{t.slug}-{n}" for n in range(3)])
    assert 1 <= server_connections(bouncer, database) <= 2
    with get_router().catalog_engine.connect() as conn:  # a returned server connection carries no tenant state
        assert conn.exec_driver_sql("SHOW search_path").scalar() == '"$user", public'


def test_the_schema_pool_lock_is_exclusive_through_the_pooler(behind_bouncer):
    engine = get_router().catalog_engine
    shard = unique_slug("lock")
    with engine.connect() as holder, engine.connect() as other:
        assert pool._locked(holder, shard, wait=False)
        assert not pool._locked(other, shard, wait=False)  # held, whichever server connection `other` gets
        pool._unlock(holder, shard)
    with engine.connect() as later:
        assert pool._locked(later, shard, wait=False)
        pool._unlock(later, shard)


def test_one_fleet_run_at_a_time_through_the_pooler(behind_bouncer):
    router = get_router()
    with fleet.fleet_lock(router):
        with pytest.raises(fleet.FleetBusy):
            with fleet.fleet_lock(router):
                pass
    with fleet.fleet_lock(router):  # released: the next run gets it
        pass
