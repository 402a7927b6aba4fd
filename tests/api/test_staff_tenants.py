"""Staff onboarding: create, duplicate, lifecycle, bad input — each bad request writes nothing."""
import pytest
from sqlalchemy import func, select, text

from tenancy.context import InvalidSlug, validate_slug
from tenancy.db import catalog_session, get_router
from tenancy.models import Tenant
from tests.conftest import unique_slug


def tenant_count():
    with catalog_session() as s:
        return s.scalar(select(func.count()).select_from(Tenant))


def schema_exists(name):
    with get_router().catalog_engine.connect() as conn:
        return conn.execute(text("select 1 from pg_namespace where nspname = :n"), {"n": name}).first() is not None


def test_create_returns_key_once_and_key_works(client, staff_headers):
    slug = unique_slug("new")
    r = client.post("/v1/staff/tenants", json={"slug": slug, "name": "New Co", "plan": "pro"}, headers=staff_headers)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["status"] == "active" and body["plan"] == "pro" and body["schema_revision"]
    assert body["api_key"].startswith("zx_live_")
    assert r.headers["Location"].endswith(f"/v1/staff/tenants/{slug}")
    assert schema_exists("t_" + slug.replace("-", "_"))
    me = client.get("/v1/tenant", headers={"X-API-Key": body["api_key"]})
    assert me.status_code == 200 and me.get_json()["plan"] == "pro"
    got = client.get(f"/v1/staff/tenants/{slug}", headers=staff_headers).get_json()
    assert "api_key" not in got


def test_duplicate_slug_is_409(client, staff_headers):
    slug = unique_slug("dup")
    assert client.post("/v1/staff/tenants", json={"slug": slug, "name": "A"}, headers=staff_headers).status_code == 201
    before = tenant_count()
    r = client.post("/v1/staff/tenants", json={"slug": slug, "name": "B"}, headers=staff_headers)
    assert r.status_code == 409
    assert r.content_type == "application/problem+json"
    assert r.get_json()["status"] == 409
    assert tenant_count() == before


def test_bad_input_gets_problem_and_writes_nothing(client, staff_headers, app):
    before = tenant_count()
    cases = [
        ({"json": {"slug": "Bad_Slug", "name": "x"}}, 422),
        ({"json": {"slug": "ab", "name": "x"}}, 422),
        ({"json": {"slug": unique_slug(), "name": "x", "colour": "red"}}, 422),
        ({"json": {"slug": unique_slug(), "name": ""}}, 422),
        ({"json": {"slug": unique_slug(), "name": "x", "plan": "platinum"}}, 422),
        ({"json": {"slug": unique_slug(), "name": "x", "admin_email": "nope"}}, 422),
        ({"json": ["not", "an", "object"]}, 422),
        ({"data": b'{"slug": "abc", ', "content_type": "application/json"}, 400),
        ({"data": b"slug=abc", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": b'{"slug":"' + b"a" * (app.config["MAX_CONTENT_LENGTH"] + 10) + b'"}',
          "content_type": "application/json"}, 413),
    ]
    for kwargs, status in cases:
        r = client.post("/v1/staff/tenants", headers=staff_headers, **kwargs)
        assert r.status_code == status, (kwargs, r.get_json())
        assert r.content_type == "application/problem+json"
        body = r.get_json()
        assert body["status"] == status and body["title"] and body["type"].startswith("https://")
    assert tenant_count() == before


def test_a_slug_with_a_trailing_newline_is_422_not_a_duplicate(client, staff_headers):
    slug = unique_slug("nl")
    assert client.post("/v1/staff/tenants", json={"slug": slug, "name": "A"}, headers=staff_headers).status_code == 201
    before = tenant_count()
    for bad in (slug + "\n", unique_slug("nl") + "\n"):
        r = client.post("/v1/staff/tenants", json={"slug": bad, "name": "B"}, headers=staff_headers)
        assert r.status_code == 422, r.get_json()
        assert r.content_type == "application/problem+json" and "slug" in r.get_json()["errors"]["json"]
    assert tenant_count() == before
    with pytest.raises(InvalidSlug):
        validate_slug(slug + "\n")


def test_field_errors_are_listed(client, staff_headers):
    r = client.post("/v1/staff/tenants", json={"slug": "9lives", "name": "x", "extra": 1}, headers=staff_headers)
    errors = r.get_json()["errors"]["json"]
    assert "slug" in errors and "extra" in errors


def test_suspend_resume_archive_restore(client, staff_headers, make_tenant):
    t = make_tenant("life")
    url = f"/v1/staff/tenants/{t.slug}"
    assert client.patch(url, json={"status": "suspended"}, headers=staff_headers).get_json()["status"] == "suspended"
    r = client.get("/v1/tenant", headers=t.headers)
    assert r.status_code == 403 and r.get_json()["type"].endswith("tenant-suspended")
    assert client.patch(url, json={"status": "active"}, headers=staff_headers).status_code == 200
    assert client.get("/v1/tenant", headers=t.headers).status_code == 200
    r = client.delete(url, headers=staff_headers)
    assert r.get_json()["status"] == "archived"
    assert not schema_exists(t.ref.schema)
    assert client.get("/v1/tenant", headers=t.headers).status_code == 410
    r = client.post(url + "/restore", headers=staff_headers)
    assert r.status_code == 200 and r.get_json()["status"] == "active"
    assert schema_exists(t.ref.schema)
    log = client.get("/v1/audit-log", headers=t.headers).get_json()["items"]
    assert [e["action"] for e in log][:2] == ["tenant.restored", "tenant.archived"]


def test_invalid_transitions_are_409(client, staff_headers, make_tenant):
    t = make_tenant("trans")
    url = f"/v1/staff/tenants/{t.slug}"
    client.delete(url, headers=staff_headers)
    r = client.patch(url, json={"status": "suspended"}, headers=staff_headers)
    assert r.status_code == 409
    assert client.patch(url, json={}, headers=staff_headers).status_code == 422
    assert client.patch(url, json={"status": "archived"}, headers=staff_headers).status_code == 422


def test_plan_change_shows_at_once(client, staff_headers, make_tenant):
    t = make_tenant("plan")
    client.patch(f"/v1/staff/tenants/{t.slug}", json={"plan": "enterprise"}, headers=staff_headers)
    assert client.get("/v1/tenant", headers=t.headers).get_json()["limits"]["requests_per_minute"] == 6000


def test_unknown_tenant_is_404(client, staff_headers):
    for method in ("get", "delete"):
        r = getattr(client, method)("/v1/staff/tenants/no-such-tenant", headers=staff_headers)
        assert r.status_code == 404 and r.content_type == "application/problem+json"


def test_list_paginates_with_cursor(client, staff_headers, make_tenant):
    for _ in range(3):
        make_tenant("page")
    seen, cursor = [], None
    while True:
        r = client.get("/v1/staff/tenants", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                       headers=staff_headers)
        body = r.get_json()
        seen += [t["slug"] for t in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == tenant_count()
    assert client.get("/v1/staff/tenants?cursor=garbage", headers=staff_headers).status_code == 400
    assert client.get("/v1/staff/tenants?limit=0", headers=staff_headers).status_code == 422


def test_idempotency_key_replays_the_same_tenant(client, staff_headers):
    slug = unique_slug("idem")
    headers = {**staff_headers, "Idempotency-Key": "create-" + slug}
    first = client.post("/v1/staff/tenants", json={"slug": slug, "name": "I"}, headers=headers)
    second = client.post("/v1/staff/tenants", json={"slug": slug, "name": "I"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.get_json() == second.get_json()
    other = client.post("/v1/staff/tenants", json={"slug": slug, "name": "Other"}, headers=headers)
    assert other.status_code == 422 and other.get_json()["type"].endswith("idempotency-key-reused")
