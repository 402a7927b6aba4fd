"""Tenant A's credentials never read or change tenant B's data: 404, not 403, so existence does not leak."""
import threading

from sqlalchemy import text

from core import bootstrap
from tenancy.db import get_router


def test_keys_of_another_tenant_are_invisible(client, make_tenant):
    a, b = make_tenant("a"), make_tenant("b")
    key_b = client.post("/v1/api-keys", json={"name": "b-key", "role": "VIEWER"}, headers=b.headers).get_json()
    ids_a = [k["id"] for k in client.get("/v1/api-keys", headers=a.headers).get_json()["items"]]
    assert key_b["id"] not in ids_a
    r = client.delete(f"/v1/api-keys/{key_b['id']}", headers=a.headers)
    assert r.status_code == 404 and r.content_type == "application/problem+json"
    assert client.get("/v1/tenant", headers={"X-API-Key": key_b["secret"]}).status_code == 200


def test_audit_log_is_per_tenant(client, make_tenant, tokens):
    a, b = make_tenant("a"), make_tenant("b")
    client.post("/v1/api-keys", json={"name": "only-in-b", "role": "VIEWER"}, headers=b.headers)
    entries_a = client.get("/v1/audit-log", headers=a.headers).get_json()["items"]
    assert all(e["target_id"] == a.slug or e["target_type"] == "api_key" for e in entries_a)
    assert "only-in-b" not in str(entries_a)
    # a JWT for tenant A sees A only, even with B's slug nowhere in the request
    bearer = {"Authorization": f"Bearer {tokens(tenant=a.slug)}"}
    assert client.get("/v1/tenant", headers=bearer).get_json()["slug"] == a.slug


def test_twenty_tenants_interleaved_over_two_connections(app, settings, make_tenant):
    tenants = [make_tenant("par") for _ in range(20)]
    for i, t in enumerate(tenants):  # each tenant gets a distinctive number of audit entries
        for n in range(i % 4):
            app.test_client().post("/v1/api-keys", json={"name": f"{t.slug}-{n}", "role": "VIEWER"},
                                   headers=t.headers)
    expected = {t.slug: app.test_client().get("/v1/audit-log?limit=200", headers=t.headers).get_json()["items"]
                for t in tenants}
    narrow = settings.__class__(**{**settings.__dict__, "db_pool_size": 2, "db_max_overflow": 0})
    bootstrap.init(narrow)
    try:
        engine = get_router().catalog_engine
        assert engine.pool.size() == 2
        errors = []

        def worker(ts):
            client = app.test_client()
            for _ in range(5):
                for t in ts:
                    items = client.get("/v1/audit-log?limit=200", headers=t.headers).get_json()["items"]
                    if items != expected[t.slug]:
                        errors.append(t.slug)

        threads = [threading.Thread(target=worker, args=(tenants[i::4],)) for i in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        with engine.connect() as conn:  # a returned connection carries no tenant state
            assert conn.execute(text("show search_path")).scalar() == '"$user", public'
        assert engine.pool.checkedout() == 0
    finally:
        bootstrap.init(settings)
