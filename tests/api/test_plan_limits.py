"""What a plan allows: one webhook budget per tenant across all its endpoints (429 problem+json, Retry-After,
nothing kept), and at most so many connections and webhook endpoints (409 plan-limit-reached, nothing created);
each tenant's own, never another's."""
import uuid

import pytest
from sqlalchemy import func, select

from core.connections import store
from core.connections.quota import PlanLimitReached
from core.inbound import processor
from core.inbound.models import InboundEvent
from core.tenants import plans
from sandbox.signing import sign
from tenancy.context import tenant_context
from tenancy.db import catalog_transaction, tenant_session
from tenancy.models import Plan


@pytest.fixture()
def make_plan(app, monkeypatch):
    def make(webhooks=600, connections=50, endpoints=50) -> str:
        name = f"p-{uuid.uuid4().hex[:12]}"
        with catalog_transaction() as session:
            session.add(Plan(name=name, requests_per_minute=600, key_requests_per_minute=600,
                             webhook_requests_per_minute=webhooks, max_connections=connections,
                             max_hook_endpoints=endpoints))
        monkeypatch.setattr(plans, "_loaded", 0.0)  # the plans cache reloads (it would see the plan within 5 s)
        return name

    return make


def custom_endpoint(t):
    secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    with tenant_context(t.ref):
        _, token = store.create_connection(provider="custom", webhook_secrets=[secret])
    return f"/v1/hooks/{token}", secret


def deliver(client, endpoint, *, signed=True):
    path, secret = endpoint
    body, headers = sign("custom", f"http://localhost{path}", {"type": "ping", "n": uuid.uuid4().hex}, secret)
    if not signed:
        headers = {**headers, "webhook-signature": "v1,AAAA"}
    return client.post(path, data=body, headers=headers)


def events(t) -> int:
    """The tenant's events once the inbox processor has fanned out what was kept raw behind the answers."""
    with tenant_context(t.ref):
        processor.process_pending()
    with tenant_context(t.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(InboundEvent))


def test_the_webhook_budget_is_the_tenants_across_all_its_endpoints(client, make_tenant, make_plan):
    tiny = make_plan(webhooks=3)
    a, b = make_tenant("budget", plan=tiny), make_tenant("other", plan=tiny)
    first, second = custom_endpoint(a), custom_endpoint(a)
    assert deliver(client, first, signed=False).status_code == 401  # a forged delivery spends nothing
    assert [deliver(client, e).status_code for e in (first, second, first)] == [200, 200, 200]
    refused = deliver(client, second)  # a new endpoint is not a new budget
    assert refused.status_code == 429 and refused.content_type == "application/problem+json"
    assert refused.get_json()["type"].endswith("/webhook-rate-limited") and "3 a minute" in refused.get_json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert events(a) == 3  # nothing of the refused delivery was kept
    assert deliver(client, custom_endpoint(b)).status_code == 200 and events(b) == 1  # b's budget is b's own


def test_the_tenant_answer_shows_its_plans_limits(client, make_tenant, make_plan):
    t = make_tenant("shown", plan=make_plan(webhooks=7, connections=4, endpoints=3))
    limits = client.get("/v1/tenant", headers=t.headers).get_json()["limits"]
    assert (limits["webhook_requests_per_minute"], limits["max_connections"], limits["max_hook_endpoints"]) == (7, 4, 3)


def test_connections_are_limited_per_plan_and_a_refusal_creates_nothing(client, make_tenant, make_plan):
    two = make_plan(connections=2)
    a, b = make_tenant("quota", plan=two), make_tenant("quotb", plan=two)
    made = [client.post("/v1/connections", json={"provider": "custom"}, headers=a.headers) for _ in range(2)]
    assert [r.status_code for r in made] == [201, 201]
    refused = client.post("/v1/connections", json={"provider": "custom"}, headers=a.headers)
    assert refused.status_code == 409 and refused.content_type == "application/problem+json"
    problem = refused.get_json()
    assert problem["type"].endswith("/plan-limit-reached") and "2 connections" in problem["detail"]
    assert len(client.get("/v1/connections", headers=a.headers).get_json()["items"]) == 2
    assert client.post("/v1/connections", json={"provider": "custom"}, headers=b.headers).status_code == 201
    assert client.delete(f"/v1/connections/{made[0].get_json()['id']}", headers=a.headers).status_code == 204
    assert client.post("/v1/connections", json={"provider": "custom"}, headers=a.headers).status_code == 201


def test_webhook_endpoints_are_limited_per_plan_and_the_refused_connection_is_not_kept(make_tenant, make_plan):
    t = make_tenant("endpq", plan=make_plan(connections=5, endpoints=1))
    custom_endpoint(t)
    with tenant_context(t.ref):
        with pytest.raises(PlanLimitReached, match="1 webhook endpoints"):
            store.create_connection(provider="custom")
        assert len(store.list_connections(limit=10)) == 1
