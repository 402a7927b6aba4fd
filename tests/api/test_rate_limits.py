"""Plan-based request limits per tenant: 429 problem with Retry-After; other tenants unaffected."""


def test_free_plan_is_limited_per_tenant(client, make_tenant, staff_headers):
    a, b = make_tenant("rl"), make_tenant("rl")
    for _ in range(60):
        assert client.get("/v1/tenant", headers=a.headers).status_code == 200
    r = client.get("/v1/tenant", headers=a.headers)
    assert r.status_code == 429 and r.content_type == "application/problem+json"
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["X-RateLimit-Limit"] == "60"
    assert client.get("/v1/tenant", headers=b.headers).status_code == 200
    # staff raise the plan: the next request is counted against the new limit, no restart
    assert client.patch(f"/v1/staff/tenants/{a.slug}", json={"plan": "pro"}, headers=staff_headers).status_code == 200
    assert client.get("/v1/tenant", headers=a.headers).status_code == 200
