def test_health(client):
    assert client.get("/health").status_code == 200


def test_ready_names_every_part_only_to_operators(client, make_tenant, tokens, staff_headers):
    everyone = {"catalog": "ok", "redis": "ok", "shard:default": "ok"}
    for headers in (staff_headers, {"Authorization": "Bearer test-metrics-token"}):
        assert client.get("/ready", headers=headers).get_json() == {"status": "ok", "checks": everyone}
    t = make_tenant("readyx")
    for headers in ({}, t.headers, {"Authorization": f"Bearer {tokens(tenant=t.slug)}"},
                    {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        r = client.get("/ready", headers=headers)
        assert r.status_code == 200 and r.get_json() == {"status": "ok", "checks": {}}, headers


def test_admin_key_reads_own_tenant(client, make_tenant):
    t = make_tenant("acme")
    r = client.get("/v1/tenant", headers=t.headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["slug"] == t.slug
    assert r.get_json()["limits"]["requests_per_minute"] == 60


def test_field_errors_keyed_by_list_position_and_schema_are_a_clean_422(client, make_tenant):
    """Found by the fuzz: errors keyed 3 and "_schema" side by side once made the problem body unserialisable."""
    t = make_tenant("errkeys")
    body = {"events": {"job-failed": {"enabled": True, "users": [{"id": "u1"}, 5, {"id": "u1"}]}}}
    r = client.put("/v1/notification-settings", json=body, headers=t.headers)
    assert r.status_code == 422 and r.content_type == "application/problem+json"
    assert "1" in r.get_json()["errors"]["json"]["events"]["job-failed"]["users"]
