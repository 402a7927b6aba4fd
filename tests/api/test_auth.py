"""Authentication and roles: API keys, JWTs, revocation, role checks — each refusal a problem, no writes."""
import time

from api.tokens import generate_signing_key
from tests.conftest import unique_slug


def create_key(client, t, role="VIEWER", name="k"):
    r = client.post("/v1/api-keys", json={"name": name, "role": role}, headers=t.headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def audit_actions(client, t):
    return [e["action"] for e in client.get("/v1/audit-log", headers=t.headers, query_string={"limit": 200})
            .get_json()["items"]]


def assert_problem(r, status, suffix=None):
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.content_type == "application/problem+json"
    if suffix:
        assert r.get_json()["type"].endswith(suffix), r.get_json()


def test_missing_and_malformed_credentials(client):
    assert_problem(client.get("/v1/tenant"), 401)
    assert client.get("/v1/tenant").headers["WWW-Authenticate"]
    assert_problem(client.get("/v1/tenant", headers={"X-API-Key": "nope"}), 401)
    assert_problem(client.get("/v1/tenant", headers={"X-API-Key": "zx_live_" + "a" * 60}), 401)
    assert_problem(client.get("/v1/tenant", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(client.get("/v1/tenant", headers={"Authorization": "Bearer not.a.jwt"}), 401)


def test_wrong_secret_with_real_prefix_is_refused(client, make_tenant):
    t = make_tenant()
    forged = t.admin_key[:-4] + ("AAAA" if not t.admin_key.endswith("AAAA") else "BBBB")
    assert_problem(client.get("/v1/tenant", headers={"X-API-Key": forged}), 401)


def test_revoked_key_stops_at_once(client, make_tenant):
    t = make_tenant()
    key = create_key(client, t, role="ADMIN")
    headers = {"X-API-Key": key["secret"]}
    assert client.get("/v1/tenant", headers=headers).status_code == 200
    assert client.delete(f"/v1/api-keys/{key['id']}", headers=t.headers).status_code == 204
    assert_problem(client.get("/v1/tenant", headers=headers), 401)
    listed = client.get("/v1/api-keys", headers=t.headers).get_json()["items"]
    assert key["id"] not in [k["id"] for k in listed]
    listed = client.get("/v1/api-keys?include_revoked=true", headers=t.headers).get_json()["items"]
    assert [k["revoked_at"] for k in listed if k["id"] == key["id"]][0]
    assert "api_key.revoked" in audit_actions(client, t)


def test_secret_shown_once_and_never_listed(client, make_tenant):
    t = make_tenant()
    key = create_key(client, t)
    assert key["secret"].startswith("zx_live_") and key["prefix"] == key["secret"][:20]
    for item in client.get("/v1/api-keys", headers=t.headers).get_json()["items"]:
        assert "secret" not in item


def test_last_used_is_recorded(client, make_tenant):
    t = make_tenant()
    key = create_key(client, t, role="VIEWER")
    client.get("/v1/tenant", headers={"X-API-Key": key["secret"]})
    listed = client.get("/v1/api-keys", headers=t.headers).get_json()["items"]
    assert [k["last_used_at"] for k in listed if k["id"] == key["id"]][0] is not None


def test_roles_are_enforced_per_endpoint(client, make_tenant):
    t = make_tenant()
    viewer = {"X-API-Key": create_key(client, t, role="VIEWER")["secret"]}
    editor = {"X-API-Key": create_key(client, t, role="EDITOR")["secret"]}
    before = len(client.get("/v1/api-keys", headers=t.headers).get_json()["items"])
    assert client.get("/v1/tenant", headers=viewer).status_code == 200
    for headers in (viewer, editor):
        assert_problem(client.post("/v1/api-keys", json={"name": "x", "role": "ADMIN"}, headers=headers), 403,
                       "insufficient-role")
        assert_problem(client.get("/v1/audit-log", headers=headers), 403)
    assert len(client.get("/v1/api-keys", headers=t.headers).get_json()["items"]) == before


def test_tenant_credentials_cannot_use_staff_endpoints(client, make_tenant, tokens):
    t = make_tenant()
    before = client.get("/v1/tenant", headers=t.headers).get_json()
    assert_problem(client.get("/v1/staff/tenants", headers=t.headers), 403, "staff-only")
    bearer = {"Authorization": f"Bearer {tokens(tenant=t.slug, role='ADMIN')}"}
    assert_problem(client.post("/v1/staff/tenants", json={"slug": unique_slug(), "name": "x"}, headers=bearer),
                   403, "staff-only")
    assert client.get("/v1/tenant", headers=t.headers).get_json() == before


def test_staff_token_does_not_act_as_tenant(client, staff_headers):
    assert_problem(client.get("/v1/tenant", headers=staff_headers), 403, "tenant-required")


def test_tenant_user_jwt_with_role(client, make_tenant, tokens):
    t = make_tenant()
    admin = {"Authorization": f"Bearer {tokens(tenant=t.slug, role='ADMIN')}"}
    viewer = {"Authorization": f"Bearer {tokens(tenant=t.slug, role='VIEWER')}"}
    assert client.get("/v1/tenant", headers=admin).get_json()["slug"] == t.slug
    r = client.post("/v1/api-keys", json={"name": "from-user", "role": "VIEWER"}, headers=admin)
    assert r.status_code == 201
    entry = client.get("/v1/audit-log", headers=t.headers).get_json()["items"][0]
    assert entry["actor_type"] == "user" and entry["actor_id"] == "user-1"
    assert_problem(client.post("/v1/api-keys", json={"name": "x", "role": "VIEWER"}, headers=viewer), 403)


def test_bad_jwts_are_401(client, make_tenant, tokens, tmp_path):
    t = make_tenant()
    generate_signing_key(tmp_path)
    bad = {
        "expired": tokens(tenant=t.slug, ttl=-120),
        "wrong key": tokens(tenant=t.slug, key_file=tmp_path / "jwt-private.pem"),
        "wrong audience": tokens(tenant=t.slug, audience="someone-else"),
        "wrong issuer": tokens(tenant=t.slug, issuer="evil"),
        "unknown tenant": tokens(tenant="no-such-tenant"),
        "bad role": tokens(tenant=t.slug, role="OWNER"),
    }
    for label, token in bad.items():
        r = client.get("/v1/tenant", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, label
        assert r.content_type == "application/problem+json"


def test_both_credentials_is_400(client, make_tenant, tokens):
    t = make_tenant()
    r = client.get("/v1/tenant", headers={**t.headers, "Authorization": f"Bearer {tokens(staff=True)}"})
    assert_problem(r, 400, "ambiguous-credentials")


def test_bad_api_key_input_writes_nothing(client, make_tenant):
    t = make_tenant()
    before = client.get("/v1/api-keys", headers=t.headers).get_json()["items"]
    for body in ({"name": "x", "role": "GOD"}, {"name": "", "role": "ADMIN"}, {"role": "ADMIN"},
                 {"name": "x", "role": "ADMIN", "scopes": ["*"]}, {"name": "x", "role": "ADMIN", "environment": "qa"}):
        assert_problem(client.post("/v1/api-keys", json=body, headers=t.headers), 422)
    assert_problem(client.post("/v1/api-keys", data="name=x", headers={**t.headers, "Content-Type": "text/plain"}),
                   415)
    assert_problem(client.delete("/v1/api-keys/not-a-uuid", headers=t.headers), 404)
    assert client.get("/v1/api-keys", headers=t.headers).get_json()["items"] == before


def test_idempotent_key_creation(client, make_tenant):
    t = make_tenant()
    headers = {**t.headers, "Idempotency-Key": f"k-{time.time()}"}
    a = client.post("/v1/api-keys", json={"name": "ci", "role": "EDITOR"}, headers=headers)
    b = client.post("/v1/api-keys", json={"name": "ci", "role": "EDITOR"}, headers=headers)
    assert a.get_json()["id"] == b.get_json()["id"] and b.headers["Idempotent-Replayed"] == "true"
    names = [k["name"] for k in client.get("/v1/api-keys", headers=t.headers).get_json()["items"]]
    assert names.count("ci") == 1


def test_a_kept_answer_is_sealed_and_replays_its_one_time_secret(client, make_tenant):
    """The answer kept for a replay carries the new key's secret: stored sealed, never readable in the table."""
    import json

    from sqlalchemy import select

    from core.platform.models import TenantIdempotencyRecord
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session, tenant_transaction

    t = make_tenant()
    headers = {**t.headers, "Idempotency-Key": "seal-1"}
    a = client.post("/v1/api-keys", json={"name": "sealed", "role": "VIEWER"}, headers=headers)
    b = client.post("/v1/api-keys", json={"name": "sealed", "role": "VIEWER"}, headers=headers)
    assert a.status_code == b.status_code == 201 and a.get_json() == b.get_json()
    secret = a.get_json()["secret"]
    with tenant_context(t.ref), tenant_session() as session:
        record = session.scalars(select(TenantIdempotencyRecord)
                                 .where(TenantIdempotencyRecord.key == "seal-1")).one()
    assert list(record.response_body) == ["sealed"] and secret not in json.dumps(record.response_body)
    # a sealed answer opens only for its own key and caller: moved to another key, it is refused, not replayed
    with tenant_context(t.ref), tenant_transaction() as session:
        session.add(TenantIdempotencyRecord(key="seal-2", principal=record.principal, request_hash=record.request_hash,
                                            status_code=201, response_body=record.response_body))
    r = client.post("/v1/api-keys", json={"name": "sealed", "role": "VIEWER"},
                    headers={**t.headers, "Idempotency-Key": "seal-2"})
    assert r.status_code == 409 and r.get_json()["type"].endswith("idempotency-record-unreadable")
    assert secret not in r.get_data(as_text=True)


def test_405_carries_allow(client):
    r = client.put("/v1/tenant", json={})
    assert_problem(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}


def test_unknown_path_is_problem_not_html(client):
    r = client.get("/v1/nothing-here")
    assert_problem(r, 404)
