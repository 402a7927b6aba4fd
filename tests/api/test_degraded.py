"""When Redis is down: /ready says so (503, naming it to staff only), and limits fail open instead of failing
requests."""
import dataclasses

from prometheus_client import REGISTRY

from core import bootstrap
from devstack import free_port


def test_redis_down(settings, make_tenant, staff_headers):
    from api.app import create_app

    t = make_tenant()
    broken = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        client = create_app(broken).test_client()
        public = client.get("/ready")  # the public learns only that it is not ready
        assert public.status_code == 503 and public.content_type == "application/problem+json"
        assert "checks" not in public.get_json() and "redis" not in public.get_data(as_text=True)
        r = client.get("/ready", headers=staff_headers)
        assert r.status_code == 503 and r.content_type == "application/problem+json"
        body = r.get_json()
        assert body["failing"] == ["redis"] and body["checks"]["catalog"] == "ok"
        assert "redis" in body["detail"]
        before = REGISTRY.get_sample_value("zixly_rate_limit_storage_errors_total")
        assert client.get("/v1/tenant", headers=t.headers).status_code == 200  # fail open
        # and counted: one failed storage call for the failed-authentication budget, one for the tenant's limit
        assert REGISTRY.get_sample_value("zixly_rate_limit_storage_errors_total") == before + 2
    finally:
        bootstrap.init(settings)
