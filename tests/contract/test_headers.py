"""Headers the contract promises: X-Request-ID everywhere, RateLimit-* beside X-RateLimit-*, Retry-After only on 429."""


def test_tenant_responses_carry_rate_limit_headers_but_no_retry_after(client, make_tenant):
    t = make_tenant()
    r = client.get("/v1/tenant", headers={**t.headers, "X-Request-ID": "abc-123"})
    assert r.status_code == 200 and r.headers["X-Request-ID"] == "abc-123"
    assert r.headers["RateLimit-Limit"] == r.headers["X-RateLimit-Limit"] == "60"
    assert r.headers["RateLimit-Remaining"] == r.headers["X-RateLimit-Remaining"] == "59"
    assert 0 <= int(r.headers["RateLimit-Reset"]) <= 60
    assert "Retry-After" not in r.headers


def test_rate_limited_response_says_when_to_retry(client, make_tenant):
    t = make_tenant()
    for _ in range(60):
        client.get("/v1/tenant", headers=t.headers)
    r = client.get("/v1/tenant", headers=t.headers)
    assert r.status_code == 429 and r.content_type == "application/problem+json"
    assert 0 < int(r.headers["Retry-After"]) <= 60
    assert r.headers["RateLimit-Remaining"] == "0"


def test_staff_and_errors_carry_a_request_id(client, staff_headers):
    r = client.get("/v1/staff/tenants", headers=staff_headers)
    assert r.status_code == 200 and len(r.headers["X-Request-ID"]) == 32 and "RateLimit-Limit" not in r.headers
    r = client.get("/v1/nowhere", headers={"X-Request-ID": "bad id with spaces"})
    assert r.status_code == 404 and r.headers["X-Request-ID"] != "bad id with spaces"


def test_requests_without_a_tenant_are_not_limited_even_when_the_limiter_fails_closed(settings, staff_headers):
    """flask-limiter reads every limit before applying `exempt_when`; the plan lookups must not raise for them."""
    import dataclasses

    from api.app import create_app
    from core import bootstrap

    try:
        client = create_app(dataclasses.replace(settings, rate_limit_fail_open=False)).test_client()
        assert client.get("/health").status_code == 200
        assert client.get("/v1/staff/tenants", headers=staff_headers).status_code == 200
    finally:
        bootstrap.init(settings)
