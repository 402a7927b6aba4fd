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
