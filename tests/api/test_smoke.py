def test_health(client):
    assert client.get("/health").status_code == 200


def test_ready_names_every_part(client):
    body = client.get("/ready").get_json()
    assert body["checks"] == {"catalog": "ok", "redis": "ok", "shard:default": "ok"}


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
