"""Connections end to end through the API against the provider simulators: the OAuth dance, state misuse,
sealed secrets, locked refresh, key rotation, isolation between tenants, SSRF refusals and bad input."""
import dataclasses
import json
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select, text

from connectors.env import ConnectorEnv
from core import bootstrap
from core.connections import api_calls, key_rotation, providers, routing, sealing, store
from core.connections.models import Connection
from core.platform import crypto, runtime
from core.platform.actors import Actor
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction
from tests.api.conftest import BASE

OPTIONS = {"xero": {}, "hubspot": {}, "shopify": {"shop": "zixly-demo.myshopify.com"}, "asana": {},
           "salesforce": {"login_url": "https://login.salesforce.com"}}


pytestmark = pytest.mark.usefixtures("free_accounts")


def follow_consent(authorize_url: str) -> str:
    """What the user's browser does: the provider redirects back to our callback; return its query string."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(f"{BASE}/v1/oauth/callback?")
    return urlsplit(location).query


def start(client, t, provider, **body):
    r = client.post("/v1/connections", json={"provider": provider, "options": OPTIONS[provider], **body},
                    headers=t.headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def connect(client, t, provider):
    created = start(client, t, provider, name=f"{provider} main")
    assert created["status"] == "pending" and created["authorize_url"]
    return finish(client, t, client.get("/v1/oauth/callback?" + follow_consent(created["authorize_url"])))


def finish(client, t, r):
    assert r.status_code == 200, r.get_json()
    conn = r.get_json()["connection"]
    if conn["status"] == "select_account":  # several organisations/workspaces consented: the admin picks one
        assert client.get(f"/v1/connections/{conn['id']}/test", headers=t.headers).status_code == 405
        choice = conn["accounts"][0]["account_id"]
        r = client.patch(f"/v1/connections/{conn['id']}", json={"account_id": choice}, headers=t.headers)
        assert r.status_code == 200, r.get_json()
        conn = r.get_json()
    assert conn["status"] == "active" and conn["account_id"]
    return conn


def row(t, conn_id) -> Connection:
    with tenant_context(t.ref), tenant_session() as s:
        return s.get(Connection, uuid.UUID(conn_id))


def raw_columns(t, conn_id) -> str:
    with tenant_context(t.ref), tenant_session() as s:
        values = s.execute(text(f"SELECT row_to_json(c)::text FROM {t.ref.schema}.connections c WHERE id = :id"),
                           {"id": conn_id}).scalar_one()
    return values


@pytest.mark.parametrize("provider", list(OPTIONS))
def test_full_oauth_dance_then_test_then_delete(client, make_tenant, sim, provider):
    t = make_tenant(f"oa-{provider[:4]}")
    conn = connect(client, t, provider)
    tokens = sealing.tokens_of(row(t, conn["id"]))
    assert tokens.access_token
    # no token anywhere in what the API says or in the raw row
    body = json.dumps(client.get(f"/v1/connections/{conn['id']}", headers=t.headers).get_json())
    raw = raw_columns(t, conn["id"])
    for secret in filter(None, (tokens.access_token, tokens.refresh_token)):
        assert secret not in body and secret not in raw
    assert '"tokens_sealed": "v1:test1:' in raw.replace('":"', '": "')
    result = client.post(f"/v1/connections/{conn['id']}/test", headers=t.headers).get_json()
    assert result["ok"] is True, result
    # the account is routed to this tenant for app-level webhooks
    assert routing.resolve_accounts(provider, {conn["account_id"]})[conn["account_id"]][0].slug == t.slug
    before = len(sim.calls(provider))
    assert client.delete(f"/v1/connections/{conn['id']}", headers=t.headers).status_code == 204
    assert client.get(f"/v1/connections/{conn['id']}", headers=t.headers).status_code == 404
    assert routing.resolve_accounts(provider, {conn["account_id"]}) == {}
    wiped = row(t, conn["id"])
    assert wiped.tokens_sealed is None and wiped.webhook_secrets_sealed is None and wiped.status == "revoked"
    if provider != "asana":  # Asana has no revocation endpoint; the others are told
        assert len(sim.calls(provider)) > before


def test_state_is_single_use_and_tampering_or_expiry_stores_nothing(client, make_tenant):
    t = make_tenant("state")
    created = start(client, t, "hubspot")
    query = follow_consent(created["authorize_url"])
    params = {k: v[0] for k, v in parse_qs(query).items()}
    tampered = dict(params, state=params["state"][:-2] + ("AA" if params["state"][-2:] != "AA" else "BB"))
    for bad in (tampered, dict(params, state=""), {k: v for k, v in params.items() if k != "state"}):
        r = client.get("/v1/oauth/callback", query_string=bad)
        assert r.status_code == 400 and r.content_type == "application/problem+json"
    assert row(t, created["id"]).tokens_sealed is None and row(t, created["id"]).status == "pending"
    assert client.get("/v1/oauth/callback?" + query).status_code == 200  # the genuine one still works once
    replay = client.get("/v1/oauth/callback?" + query)
    assert replay.status_code == 400 and replay.get_json()["type"].endswith("/oauth-state-invalid")
    # an expired state: the consent was given but came back after its 10 minutes
    again = client.post(f"/v1/connections/{created['id']}/authorize", headers=t.headers).get_json()
    query2 = follow_consent(again["authorize_url"])
    state2 = parse_qs(query2)["state"][0]
    tokens_before = row(t, created["id"]).tokens_sealed
    runtime.redis_client().delete(f"zixly:oauth-state:{sealing.token_hash(state2)}")  # what the TTL does
    assert client.get("/v1/oauth/callback?" + query2).status_code == 400
    assert row(t, created["id"]).tokens_sealed == tokens_before
    assert runtime.redis_client().ttl(f"zixly:oauth-state:{sealing.token_hash('x')}") == -2
    r = client.post(f"/v1/connections/{created['id']}/authorize", headers=t.headers).get_json()
    key = f"zixly:oauth-state:{sealing.token_hash(parse_qs(urlsplit(r['authorize_url']).query)['state'][0])}"
    assert 590 <= runtime.redis_client().ttl(key) <= 600


def test_consent_refused_by_the_user_is_a_400_and_stays_pending(client, make_tenant):
    t = make_tenant("deny")
    created = start(client, t, "asana")
    state = parse_qs(urlsplit(created["authorize_url"]).query)["state"][0]
    r = client.get("/v1/oauth/callback", query_string={"state": state, "error": "access_denied",
                                                       "error_description": "user said no"})
    assert r.status_code == 400
    conn = client.get(f"/v1/connections/{created['id']}", headers=t.headers).get_json()
    assert conn["status"] == "pending" and "consent refused" in conn["last_error"]


def test_one_provider_account_belongs_to_one_tenant(client, make_tenant):
    a, b = make_tenant("own-a"), make_tenant("own-b")
    connect(client, a, "hubspot")
    created = start(client, b, "hubspot")
    r = client.get("/v1/oauth/callback?" + follow_consent(created["authorize_url"]))
    assert r.status_code == 409 and r.content_type == "application/problem+json"
    assert row(b, created["id"]).status == "pending"


def test_two_workers_refreshing_at_once_make_one_refresh(client, make_tenant, sim):
    t = make_tenant("race")
    sim.configure("xero", access_ttl=1800, rotate_refresh=True)
    conn = connect(client, t, "xero")
    ident = uuid.UUID(conn["id"])
    with tenant_context(t.ref), tenant_transaction() as s:  # the access token is about to expire
        r = s.get(Connection, ident)
        tokens = sealing.tokens_of(r)
        tokens.expires_at = time.time() + 5
        sealing.store_tokens(r, tokens)
    refreshes = sim.token_requests("xero", "refresh_token")
    results, errors = [], []
    barrier = threading.Barrier(2)

    def worker():
        try:
            with tenant_context(t.ref):
                barrier.wait()
                results.append(api_calls.api_context(ident).tokens.access_token)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    [th.start() for th in threads]
    [th.join(30) for th in threads]
    assert not errors
    assert sim.token_requests("xero", "refresh_token") == refreshes + 1
    assert len(set(results)) == 1 and results[0] != tokens.access_token
    assert client.post(f"/v1/connections/{conn['id']}/test", headers=t.headers).get_json()["ok"] is True


def test_refused_refresh_marks_reauth_required_and_emits_the_event(client, make_tenant, sim):
    from core.platform import signals

    t = make_tenant("reauth")
    conn = connect(client, t, "xero")
    ident = uuid.UUID(conn["id"])
    with tenant_context(t.ref), tenant_transaction() as s:
        r = s.get(Connection, ident)
        tokens = sealing.tokens_of(r)
        tokens.expires_at = time.time()
        sealing.store_tokens(r, tokens)
    sim.revoke_grant("xero", tokens.refresh_token)
    seen = []
    receiver = lambda sender, **kw: seen.append(kw)  # noqa: E731
    signals.connection_reauth_required.connect(receiver)
    try:
        result = client.post(f"/v1/connections/{conn['id']}/test", headers=t.headers).get_json()
    finally:
        signals.connection_reauth_required.disconnect(receiver)
    assert result["ok"] is False and result["error"] == "reauth-required"
    assert client.get(f"/v1/connections/{conn['id']}", headers=t.headers).get_json()["status"] == "reauth_required"
    assert len(seen) == 1 and seen[0]["tenant"].slug == t.slug and seen[0]["connection_id"] == ident
    refreshes = sim.token_requests("xero", "refresh_token")
    client.post(f"/v1/connections/{conn['id']}/test", headers=t.headers)  # no retrying forever
    assert sim.token_requests("xero", "refresh_token") == refreshes
    # the admin consents again: active again
    again = client.post(f"/v1/connections/{conn['id']}/authorize", headers=t.headers).get_json()
    r = client.get("/v1/oauth/callback?" + follow_consent(again["authorize_url"]))
    assert r.status_code == 200 and r.get_json()["connection"]["status"] == "active"


def test_rate_limited_test_call_reports_retry_after(client, make_tenant, sim):
    t = make_tenant("rl429")
    conn = connect(client, t, "asana")
    sim.force_rate_limit("asana", retry_after=7, count=1)
    result = client.post(f"/v1/connections/{conn['id']}/test", headers=t.headers).get_json()
    assert result["ok"] is False and result["error"] == "rate-limited" and result["retry_after"] >= 7


def test_key_rotation_reseals_everything_and_connections_keep_working(client, make_tenant, simulated):
    t = make_tenant("rotate")
    conn = connect(client, t, "hubspot")
    custom = client.post("/v1/connections", json={"provider": "custom", "name": "own"}, headers=t.headers)
    custom_id, secret = custom.get_json()["id"], custom.get_json()["webhook_secret"]["secret"]
    old_kid = crypto.keyring().primary
    new_spec = f"k-new:{crypto.generate_key()},{simulated.data_keys}"
    bootstrap.init(dataclasses.replace(simulated, data_keys=new_spec))
    try:
        summary = key_rotation.rotate_data_keys()
        assert not summary["failed"] and summary["connections_resealed"] >= 2
        for ident in (conn["id"], custom_id):
            raw = raw_columns(t, ident)
            assert "v1:k-new:" in raw and f"v1:{old_kid}:" not in raw
        assert key_rotation.rotate_data_keys()["connections_resealed"] == 0  # nothing left to do
        only_new = new_spec.split(",")[0]
        bootstrap.init(dataclasses.replace(simulated, data_keys=only_new))  # the old key is retired
        assert client.post(f"/v1/connections/{conn['id']}/test", headers=t.headers).get_json()["ok"] is True
        with tenant_context(t.ref):
            assert sealing.webhook_secret_values(store.get_connection(custom_id)) == [secret]
    finally:
        bootstrap.init(simulated)


def test_webhook_secret_rotation_without_downtime(client, make_tenant, sim):
    t = make_tenant("whrot")
    created = client.post("/v1/connections", json={"provider": "custom", "name": "events"}, headers=t.headers)
    assert created.status_code == 201
    body = created.get_json()
    url, first = body["webhook"]["url"], body["webhook_secret"]
    assert url.startswith(f"{BASE}/v1/hooks/wh_") and first["secret"].startswith("whsec_")
    path = urlsplit(url).path
    assert client.get(f"/v1/connections/{body['id']}", headers=t.headers).get_json()["webhook"]["secrets"] == [
        {"id": first["id"], "created_at": first["created_at"]}]

    def deliver(secret):
        payload, headers = __import__("sandbox.signing", fromlist=["sign"]).sign(
            "custom", url, {"type": "ping", "n": uuid.uuid4().hex}, secret)
        return client.post(path, data=payload, headers=headers).status_code

    assert deliver(first["secret"]) == 200
    second = client.post(f"/v1/connections/{body['id']}/webhook/secrets", json={}, headers=t.headers).get_json()
    assert deliver(first["secret"]) == 200 and deliver(second["secret"]) == 200  # both valid during rotation
    assert client.delete(f"/v1/connections/{body['id']}/webhook/secrets/{first['id']}",
                         headers=t.headers).status_code == 204
    assert deliver(first["secret"]) == 401 and deliver(second["secret"]) == 200
    assert second["secret"] not in raw_columns(t, body["id"])


def test_tenant_b_cannot_see_or_touch_a_connection_of_a(client, make_tenant):
    a, b = make_tenant("iso-a"), make_tenant("iso-b")
    conn = client.post("/v1/connections", json={"provider": "custom", "name": "a only"}, headers=a.headers).get_json()
    cid, sid = conn["id"], conn["webhook_secret"]["id"]
    calls = [("get", f"/v1/connections/{cid}", None), ("patch", f"/v1/connections/{cid}", {"name": "x"}),
             ("delete", f"/v1/connections/{cid}", None), ("post", f"/v1/connections/{cid}/test", None),
             ("post", f"/v1/connections/{cid}/authorize", None),
             ("post", f"/v1/connections/{cid}/webhook/secrets", {}),
             ("delete", f"/v1/connections/{cid}/webhook/secrets/{sid}", None)]
    for method, path, body in calls:
        r = getattr(client, method)(path, json=body, headers=b.headers)
        assert r.status_code == 404, (method, path, r.status_code)
    assert cid not in json.dumps(client.get("/v1/connections", headers=b.headers).get_json())
    after = client.get(f"/v1/connections/{cid}", headers=a.headers).get_json()
    assert after["name"] == "a only" and len(after["webhook"]["secrets"]) == 1


def test_viewer_reads_but_cannot_change(client, make_tenant):
    t = make_tenant("viewer")
    viewer = client.post("/v1/api-keys", json={"name": "ro", "role": "VIEWER"}, headers=t.headers).get_json()
    vh = {"X-API-Key": viewer["secret"]}
    conn = client.post("/v1/connections", json={"provider": "custom"}, headers=t.headers).get_json()
    assert client.get("/v1/connections", headers=vh).status_code == 200
    assert client.get(f"/v1/connections/{conn['id']}", headers=vh).status_code == 200
    for method, path in (("post", "/v1/connections"), ("patch", f"/v1/connections/{conn['id']}"),
                         ("delete", f"/v1/connections/{conn['id']}"),
                         ("post", f"/v1/connections/{conn['id']}/test")):
        assert getattr(client, method)(path, json={"provider": "custom"}, headers=vh).status_code == 403


def test_no_answer_after_creation_shows_any_part_of_a_webhook_secret(client, make_tenant):
    t = make_tenant("nohint")
    viewer = client.post("/v1/api-keys", json={"name": "ro", "role": "VIEWER"}, headers=t.headers).get_json()
    created = client.post("/v1/connections", json={"provider": "custom"}, headers=t.headers).get_json()
    added = client.post(f"/v1/connections/{created['id']}/webhook/secrets", json={"secret": "own-key-wxyz"},
                        headers=t.headers)
    assert added.status_code == 201 and added.get_json()["secret"] == "own-key-wxyz"  # shown once, here
    for headers in (t.headers, {"X-API-Key": viewer["secret"]}):
        for path in (f"/v1/connections/{created['id']}", "/v1/connections"):
            body = client.get(path, headers=headers).get_json()
            text_ = json.dumps(body)
            assert "wxyz" not in text_ and created["webhook_secret"]["secret"][-8:] not in text_, path
            assert "hint" not in text_


def count_connections(t) -> int:
    with tenant_context(t.ref), tenant_session() as s:
        return s.scalar(select(func.count()).select_from(Connection))


@pytest.mark.parametrize("body", [
    {"provider": "myspace"},
    {"provider": 42},
    {},
    {"provider": "shopify"},  # no shop
    {"provider": "shopify", "options": {"shop": "evil.com"}},
    {"provider": "shopify", "options": {"shop": "x.myshopify.com.evil.com"}},
    {"provider": "shopify", "options": {"shop": "127.0.0.1"}},
    {"provider": "salesforce", "options": {"instance_url": "http://169.254.169.254/"}},
    {"provider": "salesforce", "options": {"instance_url": "https://10.0.0.5"}},
    {"provider": "xero", "options": "not-a-dict"},
    {"provider": "xero", "name": 5},
    {"provider": "xero", "app": {"client_id": "only-id"}},
    {"provider": "custom", "options": {"x": 1}},
])
def test_bad_input_is_a_problem_and_stores_nothing(client, make_tenant, sim, body):
    t = make_tenant("bad")
    before = len(sim.calls())
    r = client.post("/v1/connections", json=body, headers=t.headers)
    assert r.status_code == 422 and r.content_type == "application/problem+json", r.get_json()
    assert count_connections(t) == 0
    assert len(sim.calls()) == before  # no request left Zixly


def test_a_shop_name_that_resolves_to_a_private_address_is_refused(client, make_tenant, monkeypatch):
    t = make_tenant("dns")
    asked = []

    def resolver(host, *args, **kwargs):
        asked.append(host)
        return [(2, 1, 6, "", ("10.0.0.5", 443))]
    monkeypatch.setattr(providers, "connector_env", lambda: ConnectorEnv(resolver=resolver))
    r = client.post("/v1/connections", json={"provider": "shopify", "options": {"shop": "internal.myshopify.com"}},
                    headers=t.headers)
    assert r.status_code == 422 and "internal.myshopify.com" in asked
    assert count_connections(t) == 0


def test_bring_your_own_app(client, make_tenant, sim):
    t = make_tenant("byo")
    cid, secret = f"own-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    sim.register_app("asana", cid, secret, [f"{BASE}/v1/oauth/callback"])
    created = start(client, t, "asana", app={"client_id": cid, "client_secret": secret})
    assert f"client_id={cid}" in created["authorize_url"] and created["own_app"] is True
    assert secret not in json.dumps(created) and secret not in raw_columns(t, created["id"])
    finish(client, t, client.get("/v1/oauth/callback?" + follow_consent(created["authorize_url"])))


def test_audit_records_connection_changes(client, make_tenant):
    t = make_tenant("audit")
    conn = client.post("/v1/connections", json={"provider": "custom"}, headers=t.headers).get_json()
    client.patch(f"/v1/connections/{conn['id']}", json={"name": "renamed"}, headers=t.headers)
    entries = client.get("/v1/audit-log", headers=t.headers).get_json()["items"]
    actions = {e["action"] for e in entries if e.get("target_id") == conn["id"]}
    assert {"connection.created", "connection.updated"} <= actions


def test_service_level_create_still_works_without_oauth(make_tenant):
    t = make_tenant("svc")
    with tenant_context(t.ref):
        conn, token = store.create_connection(provider="xero", account_id=str(uuid.uuid4()),
                                                    webhook_secrets=["k1"])
        assert sealing.webhook_secret_values(store.get_connection(conn.id)) == ["k1"]
        store.delete_connection(conn.id, actor=Actor("staff", "pytest"))
        assert routing.resolve_endpoint(token) is None
