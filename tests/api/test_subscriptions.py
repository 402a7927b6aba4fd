"""/v1/subscriptions: ADMIN only; the secret shown once; every bad input a problem that writes nothing; another
tenant's subscriptions are 404 for every operation; the plan's limit; the SSRF guard at creation."""
from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import func, select

import connectors.destinations
import core.subscriptions.service
from core.events.models import Subscription, SubscriptionMessage
from core.platform.models import AuditEntry
from tenancy.context import tenant_context
from tenancy.db import tenant_session

URL = "http://127.0.0.1:9/hooks"  # never called here: nothing consumes the webhooks queue in these tests


@pytest.fixture
def loopback(settings, monkeypatch):
    """The explicit setting that lets a test subscribe a loopback http receiver."""
    local = dataclasses.replace(settings, subscription_allow_loopback_http=True)
    monkeypatch.setattr(core.subscriptions.service, "settings", lambda: local)
    return local


def rows(tenant):
    with tenant_context(tenant.ref), tenant_session() as session:
        subs = session.scalar(select(func.count()).select_from(Subscription))
        messages = session.scalar(select(func.count()).select_from(SubscriptionMessage))
        audited = session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.like("subscription.%")))
    return subs, messages, audited


def create(client, tenant, **body):
    return client.post("/v1/subscriptions", headers=tenant.headers,
                       json={"url": URL, "event_types": ["job.failed"], **body})


def is_problem(r, status):
    return r.status_code == status and r.content_type == "application/problem+json" and r.get_json()["status"] == status


def test_create_shows_the_secret_once_and_reads_never_do(client, make_tenant, loopback):
    t = make_tenant("sub")
    r = create(client, t, description="billing", workflows=["echo"])
    assert r.status_code == 201
    body = r.get_json()
    assert body["secret"].startswith("whsec_") and body["enabled"] is True
    assert body["event_types"] == ["job.failed"] and body["workflows"] == ["echo"]
    one = client.get(f"/v1/subscriptions/{body['id']}", headers=t.headers).get_json()
    listed = client.get("/v1/subscriptions", headers=t.headers).get_json()["items"]
    assert "secret" not in one and [s["id"] for s in listed] == [body["id"]]
    assert body["secret"] not in str(one) + str(listed)
    with tenant_context(t.ref), tenant_session() as session:
        assert body["secret"] not in session.get(Subscription, uuid.UUID(body["id"])).secrets_sealed


@pytest.mark.parametrize("body", [
    {"url": None}, {"url": ""}, {"event_types": []}, {"event_types": ["job.exploded"]}, {"event_types": "job.failed"},
    {"unknown": 1}, {"enabled": "yes"}, {"workflows": ["no-such-workflow"]}, {"connection_ids": ["not-a-uuid"]},
    {"connection_ids": [str(uuid.uuid4())]}, {"description": "x" * 501}, {"url": "ftp://hooks.example.com/"},
    {"url": "http://user:pw@127.0.0.1/"}, {"url": "http://127.0.0.1/#frag"}, {"url": "not a url"},
])
def test_bad_input_to_create_is_a_problem_and_writes_nothing(client, make_tenant, loopback, body):
    t = make_tenant("bad")
    r = create(client, t, **body)
    assert r.status_code in (400, 422) and r.content_type == "application/problem+json", r.get_json()
    assert rows(t) == (0, 0, 0)


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hooks", "https://10.1.2.3/hooks", "https://169.254.169.254/latest/meta-data",
    "https://[::1]/hooks", "https://[::ffff:127.0.0.1]/hooks", "https://[::ffff:10.0.0.1]/", "https://private.test/",
    "https://mixed.test/", "http://hooks.example.com/",  # plain http without the explicit setting
])
def test_the_ssrf_guard_refuses_private_addresses_at_creation(client, make_tenant, monkeypatch, url):
    answers = {"private.test": ["10.0.0.5"], "mixed.test": ["93.184.215.14", "192.168.1.10"],
               "hooks.example.com": ["93.184.215.14"]}
    real = connectors.destinations.system_resolver
    monkeypatch.setattr(connectors.destinations, "system_resolver", lambda host: answers.get(host) or real(host))
    t = make_tenant("ssrf")
    r = create(client, t, url=url)
    assert is_problem(r, 422), r.get_json()
    assert rows(t) == (0, 0, 0)


def test_a_public_https_url_is_accepted(client, make_tenant, monkeypatch):
    monkeypatch.setattr(connectors.destinations, "system_resolver", lambda host: ["93.184.215.14"])
    t = make_tenant("pub")
    assert create(client, t, url="https://hooks.example.com/zixly?x=1").status_code == 201


def test_the_plan_limits_the_number_of_subscriptions(client, make_tenant, loopback):
    t = make_tenant("limit")  # free: 3
    assert [create(client, t).status_code for _ in range(3)] == [201] * 3
    r = create(client, t)
    assert is_problem(r, 409) and r.get_json()["type"].endswith("subscription-limit-reached")
    assert rows(t) == (3, 0, 3)
    assert client.get("/v1/tenant", headers=t.headers).get_json()["limits"]["max_subscriptions"] == 3


def test_bad_input_on_every_other_endpoint_is_a_problem_and_changes_nothing(client, make_tenant, loopback):
    t = make_tenant("bad2")
    sub = create(client, t).get_json()
    path = f"/v1/subscriptions/{sub['id']}"
    before = client.get(path, headers=t.headers).get_json()
    checks = [
        (client.get("/v1/subscriptions?limit=0", headers=t.headers), 422),
        (client.get("/v1/subscriptions?cursor=nonsense", headers=t.headers), 400),
        (client.get("/v1/subscriptions?event_type=job.exploded", headers=t.headers), 422),
        (client.get("/v1/subscriptions/not-a-uuid", headers=t.headers), 404),
        (client.patch(path, headers=t.headers, json={"event_types": ["nope"]}), 422),
        (client.patch(path, headers=t.headers, json={"url": "https://10.0.0.1/"}), 422),
        (client.patch(path, headers=t.headers, json={"enabled": 1}), 422),
        (client.patch(path, headers=t.headers, json={"colour": "red"}), 422),
        (client.patch(path, headers=t.headers, data="[", content_type="application/json"), 400),
        (client.delete("/v1/subscriptions/not-a-uuid", headers=t.headers), 404),
        (client.post("/v1/subscriptions/not-a-uuid/rotate-secret", headers=t.headers), 404),
        (client.get(f"{path}/attempts?outcome=maybe", headers=t.headers), 422),
        (client.get(f"{path}/attempts?message_id=zz", headers=t.headers), 422),
        (client.post(f"{path}/replay", headers=t.headers, json={}), 422),
        (client.post(f"{path}/replay", headers=t.headers,
                     json={"message_id": str(uuid.uuid4()), "since": "2026-01-01T00:00:00Z"}), 422),
        (client.post(f"{path}/replay", headers=t.headers, json={"since": "yesterday"}), 422),
        (client.post(f"{path}/replay", headers=t.headers, json={"since": "2026-01-01T00:00:00"}), 422),  # naive
        (client.post(f"{path}/messages/{uuid.uuid4()}/replay", headers=t.headers), 404),
        (client.post(f"{path}/messages/not-a-uuid/replay", headers=t.headers), 404),
        (client.post("/v1/subscriptions/not-a-uuid/test", headers=t.headers), 404),
    ]
    for response, status in checks:
        assert is_problem(response, status), (response.request.path, response.status_code, response.get_json())
    assert client.get(path, headers=t.headers).get_json() == before
    assert rows(t) == (1, 0, 1)


def test_a_disabled_subscription_is_not_replayed_or_tested(client, make_tenant, loopback):
    t = make_tenant("off")
    sub = create(client, t, enabled=False).get_json()
    for action, body in (("replay", {"since": "2026-01-01T00:00:00Z"}), ("test", None),
                         (f"messages/{uuid.uuid4()}/replay", None)):
        r = client.post(f"/v1/subscriptions/{sub['id']}/{action}", headers=t.headers, json=body)
        assert is_problem(r, 409) and r.get_json()["type"].endswith("subscription-disabled")
    assert rows(t) == (1, 0, 1)


def test_non_admins_may_not_touch_subscriptions(client, make_tenant, loopback):
    t = make_tenant("roles")
    sub = create(client, t).get_json()
    viewer = client.post("/v1/api-keys", headers=t.headers, json={"name": "v", "role": "EDITOR"}).get_json()
    headers = {"X-API-Key": viewer["secret"]}
    assert client.get("/v1/subscriptions", headers=headers).status_code == 403
    assert client.get(f"/v1/subscriptions/{sub['id']}", headers=headers).status_code == 403
    assert client.post("/v1/subscriptions", headers=headers, json={"url": URL, "event_types": ["job.failed"]}
                       ).status_code == 403


def test_another_tenants_subscriptions_are_404_for_every_operation(client, make_tenant, loopback):
    a, b = make_tenant("iso-a"), make_tenant("iso-b")
    theirs = create(client, b).get_json()
    test = client.post(f"/v1/subscriptions/{theirs['id']}/test", headers=b.headers)
    assert test.status_code == 202
    path = f"/v1/subscriptions/{theirs['id']}"
    before = client.get(path, headers=b.headers).get_json()
    assert client.get("/v1/subscriptions", headers=a.headers).get_json()["items"] == []
    for response in (
        client.get(path, headers=a.headers),
        client.patch(path, headers=a.headers, json={"enabled": False}),
        client.delete(path, headers=a.headers),
        client.post(f"{path}/rotate-secret", headers=a.headers),
        client.get(f"{path}/attempts", headers=a.headers),
        client.post(f"{path}/messages/{test.get_json()['id']}/replay", headers=a.headers),
        client.post(f"{path}/replay", headers=a.headers, json={"since": "2026-01-01T00:00:00Z"}),
        client.post(f"{path}/test", headers=a.headers),
    ):
        assert is_problem(response, 404), (response.request.path, response.get_json())
    assert client.get(path, headers=b.headers).get_json() == before
    assert rows(a) == (0, 0, 0) and rows(b) == (1, 1, 2)


def test_patch_changes_filters_and_delete_removes(client, make_tenant, loopback):
    t = make_tenant("patch")
    sub = create(client, t).get_json()
    path = f"/v1/subscriptions/{sub['id']}"
    r = client.patch(path, headers=t.headers, json={"event_types": ["job.completed", "job.failed"],
                                                     "enabled": False, "description": "later"})
    assert r.status_code == 200 and r.get_json()["enabled"] is False and r.get_json()["recovery"] is None
    assert r.get_json()["event_types"] == ["job.completed", "job.failed"]
    assert client.delete(path, headers=t.headers).status_code == 204
    assert client.get(path, headers=t.headers).status_code == 404
    assert client.get("/v1/subscriptions", headers=t.headers).get_json()["items"] == []


def test_data_key_rotation_reseals_subscription_secrets(client, make_tenant, loopback, settings):
    from core import bootstrap
    from core.connections import key_rotation
    from core.events import sealing
    from core.events.sealing import reseal_tenant_subscriptions
    from core.platform import crypto

    t = make_tenant("keys")
    sub = create(client, t).get_json()
    new_spec = f"k-new:{crypto.generate_key()},{settings.data_keys}"
    bootstrap.init(dataclasses.replace(settings, data_keys=new_spec))
    try:
        summary = key_rotation.rotate_data_keys()  # every tenant of the test database: judge ours
        assert t.slug not in summary["failed"] and summary["subscriptions_resealed"] >= 1
        with tenant_context(t.ref):
            assert reseal_tenant_subscriptions() == 0  # nothing left to do
        bootstrap.init(dataclasses.replace(settings, data_keys=new_spec.split(",")[0]))  # the old key retired
        with tenant_context(t.ref), tenant_session() as session:
            row = session.get(Subscription, uuid.UUID(sub["id"]))
            assert row.secrets_sealed.startswith("v1:k-new:")
            assert [i["secret"] for i in sealing.open_secrets(row.id, row.secrets_sealed)] == [sub["secret"]]
    finally:
        bootstrap.init(settings)
